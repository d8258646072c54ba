/*
 * The token checks every Wallet request makes (tokenMatches) and the admin token's (secretsEqual): exact matches
 * only, whatever the lengths and characters given.
 */
import { describe, expect, it } from 'vitest';
import { newAuthenticationToken, secretsEqual } from '../../src/passes/tokens.js';
import { tokenMatches } from '../../src/wallet/authentication.js';
import type { PassCredentials } from '../../src/wallet/known-passes.js';

const token = newAuthenticationToken();
const credentials: PassCredentials = {
  id: 1n,
  authenticationToken: Buffer.from(token),
  version: 1,
  lastModified: new Date(0),
  lastModifiedHttp: new Date(0).toUTCString(),
};

describe('tokenMatches', () => {
  it("accepts the pass's token only", () => {
    expect(tokenMatches(token, credentials)).toBe(true);
    const other = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
    expect(tokenMatches(other, credentials)).toBe(false);
    expect(tokenMatches(newAuthenticationToken(), credentials)).toBe(false);
  });

  it('refuses a prefix, a longer token and other characters without throwing', () => {
    expect(tokenMatches(token.slice(0, -1), credentials)).toBe(false);
    expect(tokenMatches(`${token}x`, credentials)).toBe(false);
    expect(tokenMatches('é'.repeat(token.length / 2), credentials)).toBe(false);
    expect(tokenMatches('', credentials)).toBe(false);
  });

  it('refuses every token when there is no pass', () => {
    expect(tokenMatches(token, undefined)).toBe(false);
  });

  it('relies on the tokens we issue all having one length', () => {
    const lengths = new Set(Array.from({ length: 50 }, () => newAuthenticationToken().length));
    expect([...lengths]).toEqual([32]);
  });
});

describe('secretsEqual', () => {
  it('compares secrets of any length', () => {
    expect(secretsEqual('admin-token', 'admin-token')).toBe(true);
    expect(secretsEqual('admin-token', 'admin-tokens')).toBe(false);
    expect(secretsEqual('', 'admin-token')).toBe(false);
  });
});
