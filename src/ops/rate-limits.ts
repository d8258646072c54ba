import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIPv6 } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, RawServerDefault } from 'fastify';
import type { ErrorBody } from '../app.js';
import type { Clock } from '../clock.js';
import { TooManyRequestsError } from '../errors.js';
import type { Logger } from '../logger.js';

/*
 * Two limits per client address (request.ip: the socket's address, or X-Forwarded-For's when TRUST_PROXY says
 * which proxies to believe):
 *
 * - A general one, per API (/v1, /admin, /download each have their own budget), that stops one address from
 *   flooding the server. It is generous on purpose: Wallet devices behind carrier-grade NAT share one public
 *   address, and after a push every device holding the pass asks for the list and then for the pass.
 * - A strict one on failed authentication (401 from Apple's authenticated endpoints or the admin API): past the
 *   threshold, every authenticated request from that address is answered 429 until the window ends, so a pass's
 *   authenticationToken or the admin token cannot be guessed at speed. Successful requests never count, so
 *   devices behind a shared address are only refused while someone at that address keeps failing.
 *
 * Both are kept in memory, per process: with several instances, each counts the requests it sees.
 */

export interface RateLimitSettings {
  /** Requests per minute per client address, for each of /v1, /admin and /download. 0 turns the limit off. */
  perMinute: number;
  /** Failed authentications per minute per client address before its authenticated requests get 429. */
  authFailuresPerMinute: number;
}

/** ~16 requests a second from one address; the reasoning is in the README ("Rate limits"). */
export const defaultRateLimits: RateLimitSettings = { perMinute: 1000, authFailuresPerMinute: 10 };

const windowMs = 60_000;

/**
 * The client address as both limits count it: IPv4 as it is (also when mapped into IPv6), IPv6 by its /64, since
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

// Addresses repeat (a device asks for the list, then the pass): their keys are remembered, boundedly.
const addressKeys = new Map<string, string>();

/** The client address of a request (its request.ip), as both limits count it: addressKey(ip), remembered. */
export function clientAddress(ip: string): string {
  let key = addressKeys.get(ip);
  if (key === undefined) {
    if (addressKeys.size >= 10_000) addressKeys.clear();
    key = addressKey(ip);
    addressKeys.set(ip, key);
  }
  return key;
}

/** The API whose general budget a route uses; undefined for routes that are not limited (health, docs). */
export function limitedApi(url: string): string | undefined {
  return /^\/(v1|admin|download)\//.exec(url)?.[1];
}

/**
 * A route that declares an OpenAPI security requirement needs credentials, so its requests are refused while the
 * client address is blocked. The same declaration documents the route, so the two cannot disagree.
 */
function needsCredentials(schema: FastifySchema | undefined): boolean {
  return (schema?.security?.length ?? 0) > 0;
}

interface Window {
  count: number;
  endsAt: number;
}

/**
 * Counts per key in fixed windows that start at the key's first count. Bounded: when full, expired windows are
 * dropped, then the oldest ones (an attacker would need that many addresses anyway).
 */
export class FixedWindows {
  readonly #windows = new Map<string, Window>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
    private readonly maxKeys = 10_000,
  ) {}

  /** The key's window while it lasts. */
  live(key: string): Window | undefined {
    const window = this.#windows.get(key);
    if (window && window.endsAt <= this.now()) {
      this.#windows.delete(key);
      return undefined;
    }
    return window;
  }

  /** Counts one for the key and returns its window. */
  add(key: string): Window {
    const window = this.live(key);
    if (window) {
      window.count += 1;
      return window;
    }
    if (this.#windows.size >= this.maxKeys) this.#makeRoom();
    const fresh = { count: 1, endsAt: this.now() + this.windowMs };
    this.#windows.set(key, fresh);
    return fresh;
  }

  #makeRoom(): void {
    const now = this.now();
    for (const [key, window] of this.#windows) if (window.endsAt <= now) this.#windows.delete(key);
    // Maps iterate in insertion order: the first key is the oldest window.
    while (this.#windows.size >= this.maxKeys) {
      const oldest = this.#windows.keys().next().value;
      if (oldest === undefined) break;
      this.#windows.delete(oldest);
    }
  }
}

/** Failed authentications per client address; past the limit, the address is blocked until its window ends. */
export class FailedAuthentications {
  readonly #windows: FixedWindows;

  constructor(
    private readonly limit: number,
    windowMs: number,
    private readonly now: () => number,
    maxAddresses = 10_000,
  ) {
    this.#windows = new FixedWindows(windowMs, now, maxAddresses);
  }

  /** Milliseconds until the address may try again; 0 while it is not blocked. */
  blockedForMs(address: string): number {
    const window = this.#windows.live(address);
    return window && window.count >= this.limit ? window.endsAt - this.now() : 0;
  }

  record(address: string): void {
    this.#windows.add(address);
  }
}

const retryAfter = (milliseconds: number) => Math.max(1, Math.ceil(milliseconds / 1000));

function blockedError(retryAfterSeconds: number): TooManyRequestsError {
  return new TooManyRequestsError(
    `Too many failed authentications from this address; retry in ${retryAfterSeconds} s`,
    retryAfterSeconds,
  );
}

/** Turns an answer that is already under way into the 429 of a blocked address (see the onSend hook). */
function replaceWithBlocked(reply: FastifyReply, retryAfterSeconds: number): string {
  const error = blockedError(retryAfterSeconds);
  const body: ErrorBody = { statusCode: error.statusCode, error: error.code, message: error.message };
  reply.removeHeader('last-modified');
  reply.removeHeader('content-disposition');
  reply
    .code(429)
    .header('retry-after', String(retryAfterSeconds))
    .header('cache-control', 'no-store')
    .header('content-type', 'application/json; charset=utf-8');
  return JSON.stringify(body);
}

type OnRequestHook = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => void;
type OnSendHook = (
  request: FastifyRequest,
  reply: FastifyReply,
  payload: unknown,
  done: (error: Error | null, payload?: unknown) => void,
) => void;

/** A request's place in its address's general budget, as the x-ratelimit-* headers tell it. */
export interface Budget {
  exceeded: boolean;
  headers: Record<string, string>;
  resetSeconds: number;
}

/** Both limits' state, counted by the Fastify hooks below. */
export class RateLimits {
  readonly #requests: FixedWindows;
  readonly failures: FailedAuthentications;

  constructor(
    readonly settings: RateLimitSettings,
    private readonly now: () => number,
  ) {
    this.#requests = new FixedWindows(windowMs, now);
    this.failures = new FailedAuthentications(settings.authFailuresPerMinute, windowMs, now);
  }

  /** Counts the request in its API's budget for its client address. */
  countRequest(api: string, address: string): Budget {
    const { perMinute } = this.settings;
    const window = this.#requests.add(`${api}:${address}`);
    const resetSeconds = retryAfter(window.endsAt - this.now());
    const budget = {
      exceeded: window.count > perMinute,
      resetSeconds,
      headers: {
        'x-ratelimit-limit': String(perMinute),
        'x-ratelimit-remaining': String(Math.max(0, perMinute - window.count)),
        'x-ratelimit-reset': String(resetSeconds),
      },
    };
    return budget;
  }
}

export function createRateLimits(settings: RateLimitSettings, clock: Clock): RateLimits {
  return new RateLimits(settings, () => clock.now().getTime());
}

/**
 * Registers both limits on the root instance; call it before the routes are registered. Each route gets only the
 * hooks it needs, with what they need to know of the route worked out once here (not on every request).
 */
export async function registerRateLimits(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
  limits: RateLimits,
): Promise<void> {
  const { settings, failures } = limits;

  // The general budget, counted on arrival; past it, 429 before any work.
  const countRequest =
    (api: string): OnRequestHook =>
    (request, reply, done) => {
      const budget = limits.countRequest(api, clientAddress(request.ip));
      reply.headers(budget.headers);
      if (!budget.exceeded) return done();
      reply.header('retry-after', String(budget.resetSeconds));
      done(
        new TooManyRequestsError(
          `Rate limit exceeded: at most ${settings.perMinute} requests a minute from one address; retry in ${budget.resetSeconds} s`,
          budget.resetSeconds,
        ),
      );
    };

  // Refused before any work (no database lookup, no token comparison) while the address is blocked.
  const refuseBlocked: OnRequestHook = (request, reply, done) => {
    const blockedMs = failures.blockedForMs(clientAddress(request.ip));
    if (blockedMs <= 0) return done();
    const seconds = retryAfter(blockedMs);
    reply.header('retry-after', String(seconds));
    done(blockedError(seconds));
  };

  // Counted when the answer is known. Requests sent in parallel all pass the check above before the first of them
  // fails; so once the threshold is reached, the answers still under way are replaced by 429 too (a correct guess
  // among them included), and a burst gets no more answers than the threshold.
  const countFailure: OnSendHook = (request, reply, payload, done) => {
    if (reply.statusCode === 429) return done(null, payload);
    const address = clientAddress(request.ip);
    const blockedMs = failures.blockedForMs(address);
    if (blockedMs > 0) return done(null, replaceWithBlocked(reply, retryAfter(blockedMs)));
    if (reply.statusCode === 401) failures.record(address);
    done(null, payload);
  };

  // Callback hooks, not async ones: no promise per hook per request on the hot Wallet routes.
  app.addHook('onRoute', (route) => {
    const api = limitedApi(route.url);
    if (!api) return;
    const onRequest: OnRequestHook[] = [];
    if (settings.perMinute > 0) onRequest.push(countRequest(api));
    if (needsCredentials(route.schema)) {
      onRequest.push(refuseBlocked);
      route.onSend = [...asList(route.onSend), countFailure];
    }
    route.onRequest = [...onRequest, ...asList(route.onRequest)];
  });
}

function asList<T>(hooks: T | T[] | undefined): T[] {
  if (hooks === undefined) return [];
  return Array.isArray(hooks) ? hooks : [hooks];
}
