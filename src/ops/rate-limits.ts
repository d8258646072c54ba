import type { IncomingMessage, ServerResponse } from 'node:http';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';
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
// IPv6 clients usually get a whole /64: counting per /64 stops one client from rotating through its addresses.
const ipv6Subnet = 64;

/** The client address as both limits count it. */
export function clientAddress(request: FastifyRequest): string {
  return normalizeIP(request.ip, ipv6Subnet);
}

/** The API whose general budget a route uses; undefined for routes that are not limited (health, docs). */
function limitedApi(request: FastifyRequest): string | undefined {
  return /^\/(v1|admin|download)\//.exec(request.routeOptions.url ?? '')?.[1];
}

/**
 * A route that declares an OpenAPI security requirement needs credentials, so its requests are refused while the
 * client address is blocked. The same declaration documents the route, so the two cannot disagree.
 */
function needsCredentials(request: FastifyRequest): boolean {
  return (request.routeOptions.schema?.security?.length ?? 0) > 0;
}

/**
 * Failed authentications per client address in fixed windows that start at the first failure. Bounded: when full,
 * expired windows are dropped, then the oldest ones (an attacker would need that many addresses anyway).
 */
export class FailedAuthentications {
  readonly #windows = new Map<string, { count: number; endsAt: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number,
    private readonly maxAddresses = 10_000,
  ) {}

  /** Milliseconds until the address may try again; 0 while it is not blocked. */
  blockedForMs(address: string): number {
    const window = this.#live(address);
    return window && window.count >= this.limit ? window.endsAt - this.now() : 0;
  }

  record(address: string): void {
    const window = this.#live(address);
    if (window) {
      window.count += 1;
      return;
    }
    if (this.#windows.size >= this.maxAddresses) this.#makeRoom();
    this.#windows.set(address, { count: 1, endsAt: this.now() + this.windowMs });
  }

  #live(address: string) {
    const window = this.#windows.get(address);
    if (window && window.endsAt <= this.now()) {
      this.#windows.delete(address);
      return undefined;
    }
    return window;
  }

  #makeRoom(): void {
    const now = this.now();
    for (const [address, window] of this.#windows) if (window.endsAt <= now) this.#windows.delete(address);
    // Maps iterate in insertion order: the first key is the oldest window.
    while (this.#windows.size >= this.maxAddresses) {
      const oldest = this.#windows.keys().next().value;
      if (oldest === undefined) break;
      this.#windows.delete(oldest);
    }
  }
}

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

/** Registers both limits on the root instance; call it before the routes are registered. */
export async function registerRateLimits(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
  settings: RateLimitSettings,
  clock: Clock,
): Promise<void> {
  if (settings.perMinute > 0) {
    await app.register(rateLimit, {
      global: true,
      max: settings.perMinute,
      timeWindow: windowMs,
      cache: 10_000,
      allowList: (request) => limitedApi(request) === undefined,
      keyGenerator: (request) => `${limitedApi(request)}:${clientAddress(request)}`,
      // Thrown, so that the central error handler writes our JSON error body; the plugin sets Retry-After.
      errorResponseBuilder: (_request, context) =>
        new TooManyRequestsError(
          `Rate limit exceeded: at most ${context.max} requests a minute from one address; retry in ${context.after}`,
          Math.ceil(context.ttl / 1000),
        ),
    });
  }

  const failures = new FailedAuthentications(settings.authFailuresPerMinute, windowMs, () =>
    clock.now().getTime(),
  );
  const retryAfter = (blockedMs: number) => Math.max(1, Math.ceil(blockedMs / 1000));

  // Refused before any work (no database lookup, no token comparison) while the address is blocked. The per-request
  // hooks take callbacks rather than being async: no promise per hook per request on the hot Wallet routes.
  app.addHook('onRequest', (request, reply, done) => {
    const blockedMs = needsCredentials(request) ? failures.blockedForMs(clientAddress(request)) : 0;
    if (blockedMs <= 0) return done();
    const seconds = retryAfter(blockedMs);
    reply.header('retry-after', String(seconds));
    done(blockedError(seconds));
  });

  // Counted when the answer is known. Requests sent in parallel all pass the check above before the first of them
  // fails; so once the threshold is reached, the answers still under way are replaced by 429 too (a correct guess
  // among them included), and a burst gets no more answers than the threshold.
  app.addHook('onSend', (request, reply, payload, done) => {
    if (!needsCredentials(request) || reply.statusCode === 429) return done(null, payload);
    const address = clientAddress(request);
    const blockedMs = failures.blockedForMs(address);
    if (blockedMs > 0) return done(null, replaceWithBlocked(reply, retryAfter(blockedMs)));
    if (reply.statusCode === 401) failures.record(address);
    done(null, payload);
  });
}
