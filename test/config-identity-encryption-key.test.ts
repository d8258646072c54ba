import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

// IDENTITY_ENCRYPTION_KEY seals the private keys of identities added through the admin API (AES-256: 32 bytes).
describe('IDENTITY_ENCRYPTION_KEY', () => {
  it('takes 32 bytes as base64 or hex, and is unset by default', () => {
    const key = randomBytes(32);
    expect(loadConfig({ IDENTITY_ENCRYPTION_KEY: key.toString('base64') }).identityEncryptionKey).toEqual(
      key,
    );
    expect(loadConfig({ IDENTITY_ENCRYPTION_KEY: key.toString('hex') }).identityEncryptionKey).toEqual(key);
    expect(loadConfig({ IDENTITY_ENCRYPTION_KEY: '' }).identityEncryptionKey).toBeUndefined();
    expect(loadConfig({}).identityEncryptionKey).toBeUndefined();
  });

  it('refuses anything else, naming the variable and how to make one', () => {
    for (const value of [
      randomBytes(16).toString('base64'),
      'a passphrase, not a key',
      randomBytes(33).toString('hex'),
    ]) {
      const load = () => loadConfig({ IDENTITY_ENCRYPTION_KEY: value });
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(/IDENTITY_ENCRYPTION_KEY: must be 32 bytes .*openssl rand -base64 32/);
    }
  });
});
