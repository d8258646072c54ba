import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A pass's authenticationToken. Apple requires at least 16 characters; 24 random bytes give 32 characters of
 * base64url, unguessable, and safe in an `Authorization: ApplePass <token>` header.
 */
export function newAuthenticationToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Compares two secrets in constant time, whatever their lengths (hashing first makes the lengths equal). */
export function secretsEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
