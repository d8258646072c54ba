import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A pass's authenticationToken. Apple requires at least 16 characters; 24 random bytes give 32 characters of
 * base64url, unguessable, and safe in an `Authorization: ApplePass <token>` header.
 */
export function newAuthenticationToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * Compares two secrets in constant time, whatever their lengths (hashing first makes the lengths equal). One-shot
 * `hash()`, not `createHash()`: it runs on every Wallet request, and saves about 4 µs of CPU per request there.
 */
export function secretsEqual(given: string, expected: string): boolean {
  return timingSafeEqual(hash('sha256', given, 'buffer'), hash('sha256', expected, 'buffer'));
}
