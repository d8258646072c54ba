import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createTestPki } from './support/pki.js';

// PEM contents in variables: what secret stores (Kubernetes, Docker secrets, cloud secret managers) hand over.
describe('certificate PEM variables', () => {
  it('passes all three on as signingPems, and none means the files in CERTIFICATES_DIR', async () => {
    const pki = await createTestPki();
    const config = loadConfig({
      SIGNER_CERT_PEM: pki.signerCertPem,
      SIGNER_KEY_PEM: pki.signerKeyPem,
      WWDR_CERT_PEM: pki.wwdrPem,
    });
    expect(config.signingPems).toEqual({
      signerCert: pki.signerCertPem.trim(),
      signerKey: pki.signerKeyPem.trim(),
      wwdr: pki.wwdrPem.trim(),
    });
    expect(loadConfig({}).signingPems).toBeUndefined();
    await rm(pki.dir, { recursive: true, force: true });
  });

  it('refuses a partial set, naming the missing variables', () => {
    const partial = () => loadConfig({ SIGNER_CERT_PEM: 'x', SIGNER_KEY_PEM: '' });
    expect(partial).toThrow(ConfigError);
    expect(partial).toThrow(/SIGNER_KEY_PEM, WWDR_CERT_PEM: missing/);
  });

  it('turns literal \\n of a one-line value back into line breaks', () => {
    const config = loadConfig({
      APNS_KEY_PEM: '-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----',
      APNS_KEY_ID: 'KEY1234567',
    });
    expect(config.apns.keyPem).toBe('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----');
  });

  it('chooses token auth for APNS_KEY_PEM, and refuses it together with APNS_KEY_FILE', () => {
    expect(loadConfig({ APNS_KEY_PEM: 'pem', APNS_KEY_ID: 'KEY1234567' }).apns.auth).toBe('token');
    expect(() => loadConfig({ APNS_KEY_PEM: 'pem' })).toThrow(/APNS_KEY_ID: both required/);
    expect(() =>
      loadConfig({ APNS_KEY_PEM: 'pem', APNS_KEY_FILE: 'k.p8', APNS_KEY_ID: 'KEY1234567' }),
    ).toThrow(/set one of them, not both/);
  });

  it('finds the shipped templates from the project root when MODELS_DIR is unset', () => {
    expect(loadConfig({}).modelsDir).toMatch(/[/\\]models$/);
  });
});
