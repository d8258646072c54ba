import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { adminTokenWeakness, ConfigError, loadConfig } from '../src/config.js';

const production = { NODE_ENV: 'production', PUBLIC_URL: 'https://passes.example.com' };
const strongToken = randomBytes(32).toString('hex');

function configError(environment: Record<string, string>): string {
  try {
    loadConfig(environment);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('loadConfig accepted the configuration');
}

describe('ADMIN_TOKEN in production', () => {
  it('refuses a token under 32 characters, naming the variable but not the token', () => {
    for (const token of ['aaaaaaaaaaaaaaaa', randomBytes(15).toString('hex').slice(0, 31)]) {
      const message = configError({ ...production, ADMIN_TOKEN: token });
      expect(message).toMatch(/ADMIN_TOKEN: must be at least 32 characters in production/);
      expect(message).toContain('openssl rand -hex 32');
      expect(message).not.toContain(token);
    }
  });

  it('refuses a long token with little variety', () => {
    for (const token of ['a'.repeat(64), 'ab'.repeat(16), `${'a'.repeat(26)}bcdefg`, 'abcabc'.repeat(11)]) {
      const message = configError({ ...production, ADMIN_TOKEN: token });
      expect(message).toMatch(/ADMIN_TOKEN: has too little variety/);
      expect(message).not.toContain(token);
    }
  });

  it('accepts random tokens: 32 hex digits, base64, a UUID pair', () => {
    for (let i = 0; i < 2_000; i++)
      expect(adminTokenWeakness(randomBytes(16).toString('hex'))).toBeUndefined();
    expect(adminTokenWeakness(randomBytes(24).toString('base64'))).toBeUndefined();
    expect(adminTokenWeakness(`${crypto.randomUUID()}${crypto.randomUUID()}`)).toBeUndefined();
    expect(loadConfig({ ...production, ADMIN_TOKEN: strongToken }).adminToken).toBe(strongToken);
  });

  it('keeps the 16-character floor outside production', () => {
    expect(loadConfig({ ADMIN_TOKEN: 'aaaaaaaaaaaaaaaa' }).adminToken).toBe('aaaaaaaaaaaaaaaa');
  });
});

describe('ALLOW_INSECURE_PRODUCTION', () => {
  it('lets a weak token through in production as a warning for the start to log', () => {
    const config = loadConfig({
      ...production,
      ADMIN_TOKEN: 'aaaaaaaaaaaaaaaa',
      ALLOW_INSECURE_PRODUCTION: 'true',
    });
    expect(config.allowInsecureProduction).toBe(true);
    expect(config.insecureProductionWarnings).toEqual([
      expect.stringMatching(/^ADMIN_TOKEN: must be at least 32 characters/),
    ]);
    expect(config.insecureProductionWarnings.join()).not.toContain('aaaaaaaaaaaaaaaa');
  });

  it('is off by default and takes only true or false', () => {
    expect(loadConfig({ ...production, ADMIN_TOKEN: strongToken })).toMatchObject({
      allowInsecureProduction: false,
      insecureProductionWarnings: [],
    });
    expect(configError({ ALLOW_INSECURE_PRODUCTION: 'yes' })).toMatch(
      /ALLOW_INSECURE_PRODUCTION: must be true or false/,
    );
  });
});
