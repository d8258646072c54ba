import { isIPv6 } from 'node:net';
import type { FastifyRequest } from 'fastify';

/*
 * What the limits count by (request.ip: the socket's address, or X-Forwarded-For's when TRUST_PROXY says which proxies
 * to believe). Carrier-grade NAT puts thousands of Wallet devices behind one public address, and after a change every
 * device holding a pass asks for the list and then for the pass within seconds; so no limit may refuse a device for
 * what others behind its address did, short of a flood.
 *
 * - The request limits (@fastify/rate-limit, src/plugins/external/rate-limit.ts): a generous ceiling per API (/v1,
 *   /admin, /download each have their own) and address, and on Apple's endpoints a budget per device library
 *   identifier or per pass and address (walletRequestKey), so that one device cannot use up what a crowd shares.
 * - The strict one on failed authentication (src/plugins/app/failed-auth.ts), per address and credential target (the
 *   pass, or the admin token): guessing one pass's token slows only guesses at that pass.
 *
 * All are kept in memory, per process: with several instances, each counts the requests it sees.
 */

/**
 * The client address as the limits count it: IPv4 as it is (also when mapped into IPv6), IPv6 by its /64, since
 * IPv6 clients usually get a whole /64 and could otherwise rotate through its addresses.
 */
export function addressKey(ip: string): string {
  if (!isIPv6(ip)) return ip.toLowerCase();
  const address = ip.split('%')[0]?.toLowerCase() ?? '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (mapped?.[1]) return mapped[1];
  const [head = '', tail] = address.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const known = [...groups(head), ...groups(tail)];
  // An embedded IPv4 address (64:ff9b::192.0.2.1) is the last two groups: only their count matters for a /64.
  const count = known.length + (known.at(-1)?.includes('.') ? 1 : 0);
  const all = tail === undefined ? known : [...groups(head), ...Array(8 - count).fill('0'), ...groups(tail)];
  return `${all
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}

/** The API of a route: each has its own general budget, and only theirs take credentials. Undefined for others. */
export function limitedApi(url: string | undefined): string | undefined {
  return url === undefined ? undefined : /^\/(v1|admin|download)\//.exec(url)?.[1];
}

/**
 * The key of Apple's endpoints' second request limit: the device library identifier when the path names one
 * (register, unregister, the list of updatable passes), else the pass (the latest pass), with the client address.
 * Raw path parameters (validation runs later), at most maxParamLength (src/app.ts) long.
 */
export function walletRequestKey(request: FastifyRequest): string {
  const { deviceLibraryIdentifier, passTypeIdentifier, serialNumber } = request.params as Record<
    string,
    string | undefined
  >;
  const target =
    deviceLibraryIdentifier === undefined
      ? `pass ${passTypeIdentifier}/${serialNumber}`
      : `device ${deviceLibraryIdentifier}`;
  return `${addressKey(request.ip)} ${target}`;
}
