import { createPrivateKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { type Clock, systemClock } from '../../clock.js';
import { StartupError } from '../../errors.js';

const MINUTE_MS = 60_000;

/**
 * Apple: "Refresh your token no more than once every 20 minutes and no less than once every 60 minutes";
 * APNs answers 403 ExpiredProviderToken to a token older than one hour and 429
 * TooManyProviderTokenUpdates to renewals more frequent than every 20 minutes.
 */
export const PROVIDER_TOKEN_MIN_RENEWAL_MS = 20 * MINUTE_MS;
/** Upper bound of the setting: leaves 10 minutes of margin before APNs's one-hour limit. */
export const PROVIDER_TOKEN_MAX_RENEWAL_MS = 50 * MINUTE_MS;
export const PROVIDER_TOKEN_DEFAULT_RENEWAL_MS = 40 * MINUTE_MS;

export interface ProviderTokenOptions {
  /** The .p8 key downloaded from the developer account (PKCS#8 PEM, EC P-256). */
  keyPem: string;
  /** The 10-character key identifier (JWT header `kid`). */
  keyId: string;
  /** The 10-character team identifier (JWT claim `iss`). */
  teamId: string;
  clock?: Clock;
  /** Age after which the token is renewed before use; clamped to 20–50 minutes. */
  renewAfterMs?: number;
}

/** Clamps a renewal age to Apple's window (see PROVIDER_TOKEN_MIN_RENEWAL_MS). */
export function clampRenewalAge(ms: number | undefined): number {
  if (ms === undefined || !Number.isFinite(ms)) return PROVIDER_TOKEN_DEFAULT_RENEWAL_MS;
  return Math.min(PROVIDER_TOKEN_MAX_RENEWAL_MS, Math.max(PROVIDER_TOKEN_MIN_RENEWAL_MS, ms));
}

function loadSigningKey(keyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new StartupError('APNs signing key: not a readable PEM private key (.p8)');
  }
  // APNs provider tokens are ES256 only: the .p8 key is an EC key on P-256.
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new StartupError('APNs signing key: expected an EC P-256 key (.p8 from the developer account)');
  }
  return key;
}

/**
 * The provider authentication token (JWT, ES256) for token-based connections to APNs.
 * One token is shared by every request (Apple: "don't generate a new token for every request")
 * and renewed when it is older than `renewAfterMs`.
 */
export class ProviderToken {
  readonly renewAfterMs: number;
  private readonly key: KeyObject;
  private readonly clock: Clock;
  private jwt = '';
  private header = '';
  private issuedAtMs = Number.NEGATIVE_INFINITY;
  private renewalCount = 0;

  constructor(private readonly options: ProviderTokenOptions) {
    this.key = loadSigningKey(options.keyPem);
    this.clock = options.clock ?? systemClock;
    this.renewAfterMs = clampRenewalAge(options.renewAfterMs);
  }

  /** The current JWT, renewed first if it has reached `renewAfterMs`. */
  token(): string {
    const now = this.clock.now().getTime();
    if (now - this.issuedAtMs >= this.renewAfterMs) this.issue(now);
    return this.jwt;
  }

  /** The `authorization` header value (`bearer <jwt>`); the same string object until renewal. */
  authorization(): string {
    this.token();
    return this.header;
  }

  /** How many tokens were signed so far (for tests and metrics). */
  get issued(): number {
    return this.renewalCount;
  }

  /**
   * Called after APNs answered 403 ExpiredProviderToken for a request sent with `rejected`
   * (the JWT or the `bearer …` value). Returns whether a different token is now available to resend with.
   *
   * Many in-flight requests carry the same token and see the same rejection: only the first one renews
   * (the others find a token that is already different). A token younger than 20 minutes is not renewed,
   * since APNs answers 429 TooManyProviderTokenUpdates to faster renewals; such a rejection means the
   * clock is wrong, which a new token would not fix.
   */
  renewAfterRejection(rejected: string): boolean {
    if (rejected !== this.jwt && rejected !== this.header) return this.jwt !== '';
    const now = this.clock.now().getTime();
    if (now - this.issuedAtMs < PROVIDER_TOKEN_MIN_RENEWAL_MS) return false;
    this.issue(now);
    return true;
  }

  private issue(nowMs: number): void {
    // Apple: header {alg: ES256, kid}, claims {iss: team id, iat: seconds since epoch}; nothing else.
    const iat = Math.floor(nowMs / 1000);
    this.jwt = jwt.sign({ iss: this.options.teamId, iat }, this.key, {
      algorithm: 'ES256',
      header: { alg: 'ES256', kid: this.options.keyId, typ: undefined },
    });
    this.header = `bearer ${this.jwt}`;
    this.issuedAtMs = nowMs;
    this.renewalCount++;
  }
}
