import jwt from 'jsonwebtoken';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/clock.js';
import { StartupError } from '../../../src/errors.js';
import {
  clampRenewalAge,
  PROVIDER_TOKEN_DEFAULT_RENEWAL_MS,
  ProviderToken,
} from '../../../src/push/apns/provider-token.js';
import { generateProviderKey } from '../../support/mock-apns.js';

const MINUTE = 60_000;
const { keyPem, publicKeyPem } = generateProviderKey();

function fakeClock(start = Date.UTC(2025, 0, 1)): Clock & { advance(ms: number): void } {
  let t = start;
  return { now: () => new Date(t), advance: (ms) => (t += ms) };
}

describe('ProviderToken', () => {
  it('signs ES256 with header {alg, kid} and claims {iss, iat}', () => {
    const clock = fakeClock();
    const token = new ProviderToken({ keyPem, keyId: 'KEY1234567', teamId: 'TEAM123456', clock }).token();
    const decoded = jwt.verify(token, publicKeyPem, {
      algorithms: ['ES256'],
      complete: true,
      ignoreExpiration: true,
    });
    expect(decoded.header).toEqual({ alg: 'ES256', kid: 'KEY1234567' });
    expect(decoded.payload).toEqual({ iss: 'TEAM123456', iat: clock.now().getTime() / 1000 });
  });

  it('reuses one token until the configured age, then renews', () => {
    const clock = fakeClock();
    const p = new ProviderToken({ keyPem, keyId: 'K', teamId: 'T', clock, renewAfterMs: 30 * MINUTE });
    const first = p.authorization();
    expect(first).toMatch(/^bearer /);
    clock.advance(29 * MINUTE);
    expect(p.authorization()).toBe(first);
    clock.advance(MINUTE);
    expect(p.authorization()).not.toBe(first);
    expect(p.issued).toBe(2);
  });

  it('clamps the renewal age to 20–50 minutes', () => {
    expect(clampRenewalAge(undefined)).toBe(PROVIDER_TOKEN_DEFAULT_RENEWAL_MS);
    expect(clampRenewalAge(MINUTE)).toBe(20 * MINUTE);
    expect(clampRenewalAge(120 * MINUTE)).toBe(50 * MINUTE);
    expect(clampRenewalAge(33 * MINUTE)).toBe(33 * MINUTE);
  });

  it('renews once after a rejection, however many requests report the same token', () => {
    const clock = fakeClock();
    const p = new ProviderToken({ keyPem, keyId: 'K', teamId: 'T', clock, renewAfterMs: 50 * MINUTE });
    const rejected = p.authorization();
    clock.advance(25 * MINUTE);
    for (let i = 0; i < 100; i++) expect(p.renewAfterRejection(rejected)).toBe(true);
    expect(p.issued).toBe(2);
    expect(p.authorization()).not.toBe(rejected);
  });

  it('does not renew a token younger than 20 minutes (APNs: TooManyProviderTokenUpdates)', () => {
    const clock = fakeClock();
    const p = new ProviderToken({ keyPem, keyId: 'K', teamId: 'T', clock });
    const token = p.token();
    clock.advance(5 * MINUTE);
    expect(p.renewAfterRejection(token)).toBe(false);
    expect(p.token()).toBe(token);
  });

  it('refuses a key that is not EC P-256', () => {
    expect(() => new ProviderToken({ keyPem: 'nope', keyId: 'K', teamId: 'T' })).toThrow(StartupError);
  });
});
