import type { FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import fp from 'fastify-plugin';
import type { Clock } from '../../clock.js';
import { TooManyRequestsError } from '../../errors.js';
import { securitySchemes } from '../../routes/route-docs.js';
import { addressKey, limitedApi } from '../limit-keys.js';
import type { ErrorBody } from './error-handler.js';

/*
 * The strict limit on failed authentication (401 from Apple's authenticated endpoints or the admin API), counted per
 * client address AND credential target: the pass a Wallet request names (passTypeIdentifier and serialNumber), or
 * the admin token. Past the threshold, requests from that address for that target are answered 429 until the
 * window ends, so a pass's authenticationToken or the admin token cannot be guessed at speed; requests for any
 * other target are not affected. Carrier NAT puts thousands of devices behind one address: a guesser among them
 * must not lock out the others' passes, nor the admin.
 *
 * While a pass is locked from an address, the right token for that pass from that address is refused too. If it
 * were answered, a guesser would read 200 or 429 as "right" or "wrong" and guess at full speed; so the check runs
 * before any token comparison and cannot depend on the token. The pass's own device behind that address waits at
 * most one window (Wallet asks again later); every other pass, and the admin, are answered as usual.
 */

const windowMs = 60_000;

/**
 * Memory: at most this many targets per address (a guesser spraying serial numbers fills only its own share), and
 * this many in all. A blocked entry is never dropped before its window ends while an unblocked one could go instead,
 * so spraying new targets (one failure each) cannot lift a lockout (see FailedAuthentications.record).
 */
const maxTargetsPerAddress = 100;
const maxEntries = 50_000;

interface Entry {
  readonly address: string;
  readonly key: string;
  count: number;
  readonly endsAt: number;
}

/** One address's entries, oldest first, and how many of them are not blocked. */
interface AddressEntries {
  readonly entries: Map<string, Entry>;
  unblocked: number;
}

export interface FailedAuthenticationsOptions {
  /** Failures in one window that block the (address, target). */
  limit: number;
  windowMs: number;
  now: () => number;
  maxTargetsPerAddress: number;
  maxEntries: number;
}

/**
 * Failed authentications per (client address, credential target) in fixed windows that start at the first failure;
 * at the limit, the pair is blocked until its window ends.
 */
export class FailedAuthentications {
  readonly #entries = new Map<string, Entry>();
  readonly #byAddress = new Map<string, AddressEntries>();
  /** Addresses with at least one unblocked entry, roughly oldest first: where room is made first. */
  readonly #withUnblocked = new Set<string>();
  /** Blocked entries in the order they were blocked (roughly the order they end): room of last resort. */
  readonly #blocked = new Map<string, Entry>();

  constructor(private readonly options: FailedAuthenticationsOptions) {}

  /** Milliseconds until the address may try the target again; 0 while it is not blocked. */
  blockedForMs(address: string, target: string): number {
    const entry = this.#live(`${address} ${target}`);
    return entry && entry.count >= this.options.limit ? entry.endsAt - this.options.now() : 0;
  }

  /**
   * Counts one failure. A new target beyond the address's share replaces the address's oldest unblocked (or ended)
   * entry; when all of its entries are blocked, the failure is not counted: the address has locked out
   * maxTargetsPerAddress targets in this window, and what it must not get is a lockout lifted early. (Its further
   * guesses are still under the request limits, and a pass's token has 192 random bits; the admin token is its own
   * table, with one target per address, so it is always counted.) When the whole table is full, the oldest unblocked
   * entry goes; only when every entry is blocked, the oldest blocked one: filling the table takes maxEntries × limit
   * failures from maxEntries / maxTargetsPerAddress addresses, far more guesses than the lockout it lifts.
   */
  record(address: string, target: string): void {
    const key = `${address} ${target}`;
    const entry = this.#live(key);
    if (entry) {
      entry.count += 1;
      if (entry.count === this.options.limit) this.#block(entry);
      return;
    }
    const full = this.#byAddress.get(address);
    if (full && full.entries.size >= this.options.maxTargetsPerAddress && !this.#dropUnblocked(full)) return;
    if (this.#entries.size >= this.options.maxEntries) this.#makeRoom();
    // Looked up after making room, which may have dropped the address's last entry (and so the address).
    let own = this.#byAddress.get(address);
    if (!own) {
      own = { entries: new Map<string, Entry>(), unblocked: 0 };
      this.#byAddress.set(address, own);
    }
    const created: Entry = { address, key, count: 1, endsAt: this.options.now() + this.options.windowMs };
    this.#entries.set(key, created);
    own.entries.set(key, created);
    own.unblocked += 1;
    this.#withUnblocked.add(address);
    if (created.count >= this.options.limit) this.#block(created);
  }

  /** The entry while its window lasts; an ended one is dropped. */
  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry && entry.endsAt <= this.options.now()) {
      this.#drop(entry);
      return undefined;
    }
    return entry;
  }

  #block(entry: Entry): void {
    const own = this.#byAddress.get(entry.address);
    if (!own) return;
    own.unblocked -= 1;
    if (own.unblocked === 0) this.#withUnblocked.delete(entry.address);
    this.#blocked.set(entry.key, entry);
  }

  #drop(entry: Entry): void {
    this.#entries.delete(entry.key);
    const own = this.#byAddress.get(entry.address);
    if (!own) return;
    own.entries.delete(entry.key);
    if (!this.#blocked.delete(entry.key)) own.unblocked -= 1;
    if (own.unblocked === 0) this.#withUnblocked.delete(entry.address);
    if (own.entries.size === 0) this.#byAddress.delete(entry.address);
  }

  /** Drops the address's oldest entry that is ended or not blocked; false if every one is blocked. */
  #dropUnblocked(own: AddressEntries): boolean {
    const now = this.options.now();
    for (const entry of own.entries.values()) {
      if (entry.endsAt <= now || entry.count < this.options.limit) {
        this.#drop(entry);
        return true;
      }
    }
    return false;
  }

  #makeRoom(): void {
    for (const address of this.#withUnblocked) {
      const own = this.#byAddress.get(address);
      if (own && this.#dropUnblocked(own)) return;
    }
    const oldestBlocked = this.#blocked.values().next().value;
    if (oldestBlocked) this.#drop(oldestBlocked);
  }
}

const retryAfter = (milliseconds: number) => Math.max(1, Math.ceil(milliseconds / 1000));

function blockedError(retryAfterSeconds: number): TooManyRequestsError {
  return new TooManyRequestsError(
    `Too many failed authentications for this credential from this address; retry in ${retryAfterSeconds} s`,
    retryAfterSeconds,
  );
}

/**
 * What a handler or a credential check may have set on an answer that is replaced by the 429 of a blocked target:
 * dropped, so that the replaced answer says nothing about the token that was sent (www-authenticate only on a
 * wrong one; the others only on a right one).
 */
const credentialHeaders = ['www-authenticate', 'last-modified', 'content-disposition', 'location', 'etag'];

/** Turns an answer that is already under way into the 429 of a blocked target (see the onSend hook). */
function replaceWithBlocked(reply: FastifyReply, retryAfterSeconds: number): string {
  const error = blockedError(retryAfterSeconds);
  const body: ErrorBody = { statusCode: error.statusCode, error: error.code, message: error.message };
  for (const name of credentialHeaders) reply.removeHeader(name);
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

/** The credential a request presents, as the failures are counted: which pass, or the admin token. */
type TargetOf = (request: FastifyRequest) => string;

/** The pass in a Wallet path; `/` cannot be in either identifier (a request with one never gets to 401). */
const passTarget: TargetOf = (request) => {
  const { passTypeIdentifier, serialNumber } = request.params as Record<string, string | undefined>;
  return `${passTypeIdentifier}/${serialNumber}`;
};
const adminTarget: TargetOf = () => 'admin';

/** The security scheme a route declares (its OpenAPI security requirement), which says what credential it takes. */
function schemeOf(schema: FastifySchema | undefined): string | undefined {
  const [requirement] = schema?.security ?? [];
  return requirement ? Object.keys(requirement)[0] : undefined;
}

export interface FailedAuthOptions {
  /** AUTH_FAILURES_PER_MINUTE. */
  authFailuresPerMinute: number;
  clock: Clock;
}

/**
 * Adds the throttling to every route registered after it that needs credentials, with what the hooks need to know of
 * the route worked out once (not on every request). It must run before the credential check: the admin routes add
 * theirs after it (src/routes/admin/index.ts); Apple's endpoints check the token in their handlers.
 */
export const failedAuthThrottling = fp<FailedAuthOptions>(
  async (app, options) => {
    const table = (targets: number) =>
      new FailedAuthentications({
        limit: options.authFailuresPerMinute,
        windowMs,
        now: () => options.clock.now().getTime(),
        maxTargetsPerAddress: targets,
        maxEntries,
      });
    // Wallet's passes and the admin token in tables of their own: spraying passes never crowds out the admin's.
    const wallet = { failures: table(maxTargetsPerAddress), targetOf: passTarget };
    const admin = { failures: table(1), targetOf: adminTarget };

    function hooks({ failures, targetOf }: typeof wallet): {
      refuseBlocked: OnRequestHook;
      countFailure: OnSendHook;
    } {
      // Refused before any work (no database lookup, no token comparison) while the target is blocked from the
      // address: the same 429, whatever token was sent.
      const refuseBlocked: OnRequestHook = (request, reply, done) => {
        const blockedMs = failures.blockedForMs(addressKey(request.ip), targetOf(request));
        if (blockedMs <= 0) return done();
        const seconds = retryAfter(blockedMs);
        reply.header('retry-after', String(seconds)).header('cache-control', 'no-store');
        done(blockedError(seconds));
      };

      // Counted when the answer is known. Requests sent in parallel all pass the check above before the first of
      // them fails; so once the threshold is reached, the answers still under way for that target are replaced by
      // 429 too (a correct guess among them included), and a burst gets no more answers than the threshold.
      const countFailure: OnSendHook = (request, reply, payload, done) => {
        if (reply.statusCode === 429) return done(null, payload);
        const address = addressKey(request.ip);
        const target = targetOf(request);
        const blockedMs = failures.blockedForMs(address, target);
        if (blockedMs > 0) return done(null, replaceWithBlocked(reply, retryAfter(blockedMs)));
        if (reply.statusCode === 401) failures.record(address, target);
        done(null, payload);
      };
      return { refuseBlocked, countFailure };
    }
    const byScheme = new Map<string, ReturnType<typeof hooks>>([
      [securitySchemes.wallet, hooks(wallet)],
      [securitySchemes.admin, hooks(admin)],
    ]);

    // Callback hooks, not async ones: no promise per hook per request on the hot Wallet routes.
    app.addHook('onRoute', (route) => {
      const scheme = schemeOf(route.schema);
      const throttling = scheme === undefined ? undefined : byScheme.get(scheme);
      if (!limitedApi(route.url) || !throttling) return;
      route.onRequest = [...asList(route.onRequest), throttling.refuseBlocked];
      route.onSend = [...asList(route.onSend), throttling.countFailure];
    });
  },
  { name: 'failed-auth-throttling', fastify: '5.x' },
);

function asList<T>(hooks: T | T[] | undefined): T[] {
  if (hooks === undefined) return [];
  return Array.isArray(hooks) ? hooks : [hooks];
}
