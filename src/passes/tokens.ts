import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A pass's authenticationToken. Apple requires at least 16 characters; 24 random bytes give 32 characters of
 * base64url, unguessable, and safe in an `Authorization: ApplePass <token>` header. Every token has that length:
 * tokenMatches (wallet/authentication.ts) relies on it.
 */
export function newAuthenticationToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * Compares two secrets in constant time, whatever their lengths (the admin token, download-link signatures): as
 * their SHA-256, so that lengths are equal. One-shot `hash()`, not `createHash()`: it is about 4 µs cheaper.
 */
export function secretsEqual(given: string, expected: string): boolean {
  return timingSafeEqual(hash('sha256', given, 'buffer'), hash('sha256', expected, 'buffer'));
}
