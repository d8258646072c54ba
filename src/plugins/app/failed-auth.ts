import type { FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import fp from 'fastify-plugin';
import type { Clock } from '../../clock.js';
import { TooManyRequestsError } from '../../errors.js';
import { addressKey, limitedApi } from '../limit-keys.js';
import type { ErrorBody } from './error-handler.js';

/*
 * The strict limit on failed authentication (401 from Apple's authenticated endpoints or the admin API): past the
 * threshold, every authenticated request from that address is answered 429 until the window ends, so a pass's
 * authenticationToken or the admin token cannot be guessed at speed. Successful requests never count, so devices
 * behind a shared address are only refused while someone at that address keeps failing.
 */

const windowMs = 60_000;

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
class FixedWindows {
  readonly #windows = new Map<string, Window>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
    private readonly maxKeys: number,
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

  /** Counts one for the key. */
  add(key: string): void {
    const window = this.live(key);
    if (window) {
      window.count += 1;
      return;
    }
    if (this.#windows.size >= this.maxKeys) this.#makeRoom();
    this.#windows.set(key, { count: 1, endsAt: this.now() + this.windowMs });
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

export interface FailedAuthOptions {
  /** AUTH_FAILURES_PER_MINUTE. */
  authFailuresPerMinute: number;
  clock: Clock;
}

/**
 * Adds the throttling to every route registered after it that needs credentials, with what the hooks need to know of
 * the route worked out once (not on every request).
 */
export const failedAuthThrottling = fp<FailedAuthOptions>(
  async (app, options) => {
    const failures = new FailedAuthentications(options.authFailuresPerMinute, windowMs, () =>
      options.clock.now().getTime(),
    );

    // Refused before any work (no database lookup, no token comparison) while the address is blocked.
    const refuseBlocked: OnRequestHook = (request, reply, done) => {
      const blockedMs = failures.blockedForMs(addressKey(request.ip));
      if (blockedMs <= 0) return done();
      const seconds = retryAfter(blockedMs);
      reply.header('retry-after', String(seconds));
      done(blockedError(seconds));
    };

    // Counted when the answer is known. Requests sent in parallel all pass the check above before the first of
    // them fails; so once the threshold is reached, the answers still under way are replaced by 429 too (a correct
    // guess among them included), and a burst gets no more answers than the threshold.
    const countFailure: OnSendHook = (request, reply, payload, done) => {
      if (reply.statusCode === 429) return done(null, payload);
      const address = addressKey(request.ip);
      const blockedMs = failures.blockedForMs(address);
      if (blockedMs > 0) return done(null, replaceWithBlocked(reply, retryAfter(blockedMs)));
      if (reply.statusCode === 401) failures.record(address);
      done(null, payload);
    };

    // Callback hooks, not async ones: no promise per hook per request on the hot Wallet routes.
    app.addHook('onRoute', (route) => {
      if (!limitedApi(route.url) || !needsCredentials(route.schema)) return;
      route.onRequest = [...asList(route.onRequest), refuseBlocked];
      route.onSend = [...asList(route.onSend), countFailure];
    });
  },
  { name: 'failed-auth-throttling', fastify: '5.x' },
);

function asList<T>(hooks: T | T[] | undefined): T[] {
  if (hooks === undefined) return [];
  return Array.isArray(hooks) ? hooks : [hooks];
}
