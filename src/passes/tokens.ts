import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A pass's authenticationToken. Apple requires at least 16 characters; 24 random bytes give 32 characters of
 * base64url, unguessable, and safe in an `Authorization: ApplePass <token>` header.
 */
export function newAuthenticationToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * What secrets are compared by: their SHA-256, so that lengths are equal and the comparison takes constant time.
 * One-shot `hash()`, not `createHash()`: it runs on every Wallet request, and saves about 4 µs of CPU there.
 */
export function secretDigest(secret: string): Buffer {
  return hash('sha256', secret, 'buffer');
}

/** Compares a secret with the digest of the expected one in constant time, whatever their lengths. */
export function matchesDigest(given: string, expectedDigest: Buffer): boolean {
  return timingSafeEqual(secretDigest(given), expectedDigest);
}

/** Compares two secrets in constant time, whatever their lengths. */
export function secretsEqual(given: string, expected: string): boolean {
  return matchesDigest(given, secretDigest(expected));
}
