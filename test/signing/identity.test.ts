import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StartupError } from '../../src/errors.js';
import { loadTemplates, type Template } from '../../src/passes/templates.js';
import { projectRoot } from '../../src/paths.js';
import { bareContent, buildSignedBundle } from '../../src/signing/bundle.js';
import { generateDevelopmentIdentity } from '../../src/signing/dev-identity.js';
import { createIdentities } from '../../src/signing/identities.js';
import {
  FILE_NAMES,
  loadIdentityFolders,
  loadSigningIdentity,
  P12_FILE,
  type SigningIdentityOptions,
} from '../../src/signing/identity.js';
import { openTestDatabase } from '../support/database.js';
import { capturingLogger } from '../support/log-lines.js';
import { createTestPki, identityFromPki, type TestPki } from '../support/pki.js';
import { verifyPkpass } from '../support/pkpass-verifier.js';
import { runOwned as run } from '../support/process.js';

const log = pino({ level: 'silent' });
const cleanup: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'signing-identity-test-'));
  cleanup.push(dir);
  return dir;
}

async function pki(o: Parameters<typeof createTestPki>[0] = {}): Promise<TestPki> {
  const created = await createTestPki(o);
  cleanup.push(created.dir);
  return created;
}

async function options(overrides: Partial<SigningIdentityOptions>): Promise<SigningIdentityOptions> {
  return {
    certificatesDir: join(await tempDir(), 'certificates'),
    dataDir: await tempDir(),
    production: false,
    log,
    ...overrides,
  };
}

async function startupErrorOf(promise: Promise<unknown>): Promise<StartupError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(StartupError);
  return error as StartupError;
}

afterAll(async () => {
  await Promise.all(cleanup.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('loadSigningIdentity with certificates on disk', () => {
  let testPki: TestPki;
  beforeAll(async () => {
    testPki = await pki();
  });

  it('loads the files and reads the pass type id (UID) and team id (OU) from the certificate', async () => {
    const identity = await loadSigningIdentity(await options({ certificatesDir: testPki.certificatesDir }));
    expect(identity).toMatchObject({
      signerCert: testPki.signerCertPem,
      signerKey: testPki.signerKeyPem,
      wwdr: testPki.wwdrPem,
      passTypeIdentifier: 'pass.test.passkit-server',
      teamIdentifier: 'TESTTEAM01',
      isDevelopment: false,
    });
    expect(identity.notAfter.getTime()).toBeGreaterThan(Date.now());
  });

  it('accepts configured ids that agree with the certificate', async () => {
    const identity = await loadSigningIdentity(
      await options({
        certificatesDir: testPki.certificatesDir,
        passTypeIdentifier: testPki.passTypeIdentifier,
        teamIdentifier: testPki.teamIdentifier,
      }),
    );
    expect(identity.passTypeIdentifier).toBe(testPki.passTypeIdentifier);
  });

  it('refuses a TEAM_IDENTIFIER that contradicts the certificate, naming both values', async () => {
    const error = await startupErrorOf(
      loadSigningIdentity(
        await options({ certificatesDir: testPki.certificatesDir, teamIdentifier: 'OTHERTEAM1' }),
      ),
    );
    expect(error.message).toContain('TEAM_IDENTIFIER');
    expect(error.message).toContain('OTHERTEAM1');
    expect(error.message).toContain('TESTTEAM01');
    expect(error.message).toContain('Wallet would reject every pass');
  });

  it('refuses a PASS_TYPE_IDENTIFIER that contradicts the certificate, naming both values', async () => {
    const error = await startupErrorOf(
      loadSigningIdentity(
        await options({ certificatesDir: testPki.certificatesDir, passTypeIdentifier: 'pass.other.id' }),
      ),
    );
    expect(error.message).toContain('PASS_TYPE_IDENTIFIER');
    expect(error.message).toContain('pass.other.id');
    expect(error.message).toContain('pass.test.passkit-server');
  });

  it('loads an expired certificate, saying so: the server still starts and serves what it signed before', async () => {
    const expired = await pki({ expired: true });
    const { log: capturing, lines } = capturingLogger();
    const identity = await loadSigningIdentity(
      await options({ certificatesDir: expired.certificatesDir, log: capturing }),
    );
    expect(identity.notAfter.getTime()).toBeLessThan(Date.now());
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 50, // pino's error
        msg: expect.stringMatching(/has expired: .*creating or changing/),
      }),
    );
  });

  it('names the missing file when only some are present', async () => {
    const partial = await pki();
    await unlink(join(partial.certificatesDir, 'wwdr.pem'));
    const error = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir: partial.certificatesDir })),
    );
    expect(error.message).toContain('incomplete: missing wwdr.pem.');
    await unlink(join(partial.certificatesDir, 'signerKey.pem'));
    const both = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir: partial.certificatesDir })),
    );
    expect(both.message).toContain('missing signerKey.pem, wwdr.pem.');
  });

  it('refuses a WWDR certificate that did not issue the signer certificate', async () => {
    const other = await pki();
    const mixed = await pki();
    await copyFile(other.wwdrPath, mixed.wwdrPath);
    const error = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir: mixed.certificatesDir })),
    );
    expect(error.message).toContain('not issued by wwdr.pem');
  });

  it('refuses a key that does not belong to the certificate', async () => {
    const other = await pki();
    const mixed = await pki();
    await copyFile(
      join(other.certificatesDir, 'signerKey.pem'),
      join(mixed.certificatesDir, 'signerKey.pem'),
    );
    const error = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir: mixed.certificatesDir })),
    );
    expect(error.message).toContain('not the private key');
  });

  it('refuses a certificate without UID/OU', async () => {
    const plain = await pki({ signerSubject: '/CN=Not a pass certificate/O=Test/C=US' });
    const error = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir: plain.certificatesDir })),
    );
    expect(error.message).toContain('no UID (pass type identifier) and OU (team identifier)');
    expect(error.message).toContain('not a Pass Type ID certificate');
  });
});

describe('loadSigningIdentity with an encrypted key', () => {
  let encrypted: TestPki;
  beforeAll(async () => {
    encrypted = await pki({ keyPassphrase: 'correct horse' });
  });

  it('loads with the right passphrase and hands it on', async () => {
    expect(encrypted.signerKeyPem).toContain('ENCRYPTED PRIVATE KEY');
    const identity = await loadSigningIdentity(
      await options({ certificatesDir: encrypted.certificatesDir, signerKeyPassphrase: 'correct horse' }),
    );
    expect(identity.signerKeyPassphrase).toBe('correct horse');
  });

  it('refuses a wrong passphrase without revealing it', async () => {
    const error = await startupErrorOf(
      loadSigningIdentity(
        await options({ certificatesDir: encrypted.certificatesDir, signerKeyPassphrase: 'wrong' }),
      ),
    );
    expect(error.message).toContain('SIGNER_KEY_PASSPHRASE');
    expect(error.message).not.toContain('wrong"');
  });

  it('says the passphrase is needed when none is given', async () => {
    const error = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir: encrypted.certificatesDir })),
    );
    expect(error.message).toContain('encrypted: set SIGNER_KEY_PASSPHRASE');
  });
});

describe("loadSigningIdentity with Keychain's export (signer.p12 and wwdr.pem)", () => {
  let testPki: TestPki;
  beforeAll(async () => {
    testPki = await pki();
  });

  /** A folder with the test certificate and key exported by openssl as signer.p12 (Keychain writes the same format). */
  async function p12Folder(password: string, extra: string[] = []): Promise<string> {
    const dir = join(await tempDir(), 'certificates');
    await mkdir(dir);
    const pems = join(await tempDir(), 'signer.pem');
    await writeFile(pems, testPki.signerCertPem + testPki.signerKeyPem);
    await run('openssl', [
      'pkcs12',
      '-export',
      '-in',
      pems,
      '-out',
      join(dir, P12_FILE),
      '-passout',
      `pass:${password}`,
      ...extra,
    ]);
    await copyFile(join(testPki.certificatesDir, 'wwdr.pem'), join(dir, 'wwdr.pem'));
    return dir;
  }

  it('reads the certificate and key with SIGNER_KEY_PASSPHRASE, and signs passes that openssl verifies', async () => {
    for (const extra of [[], ['-certpbe', 'PBE-SHA1-3DES', '-keypbe', 'PBE-SHA1-3DES', '-macalg', 'sha1']]) {
      const dir = await p12Folder('keychain password', extra);
      const identity = await loadSigningIdentity(
        await options({ certificatesDir: dir, signerKeyPassphrase: 'keychain password' }),
      );
      expect(identity).toMatchObject({
        passTypeIdentifier: testPki.passTypeIdentifier,
        teamIdentifier: testPki.teamIdentifier,
        signerKeyPassphrase: 'keychain password',
      });
      expect(new X509Certificate(identity.signerCert).fingerprint256).toBe(
        new X509Certificate(testPki.signerCertPem).fingerprint256,
      );
      expect(identity.signerKey).toContain('ENCRYPTED');
      const { templates } = await loadTemplates(join(projectRoot, 'models'));
      const content = bareContent(templates.get('loyalty') as Template, {
        serialNumber: 'P12-1',
        authenticationToken: 'a-token-of-at-least-16-chars',
        webServiceURL: 'https://passes.example.com',
      });
      const bundle = buildSignedBundle(content, identity);
      await verifyPkpass(bundle, testPki.wwdrPem);
    }
  });

  it('says the password is needed, or wrong, without revealing it', async () => {
    const dir = await p12Folder('keychain password');
    const missing = await startupErrorOf(loadSigningIdentity(await options({ certificatesDir: dir })));
    expect(missing.message).toContain(
      'signer.p12 cannot be read: it is protected by a password: set SIGNER_KEY_PASSPHRASE',
    );
    const wrong = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir: dir, signerKeyPassphrase: 'not it' })),
    );
    expect(wrong.message).toContain('signer.p12 cannot be read: wrong SIGNER_KEY_PASSPHRASE');
    expect(wrong.message).not.toContain('not it');
  });

  it('refuses a folder with both signer.p12 and the PEM files, and one without wwdr.pem', async () => {
    const dir = await p12Folder('pw');
    await copyFile(join(testPki.certificatesDir, 'signerCert.pem'), join(dir, 'signerCert.pem'));
    const both = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir: dir, signerKeyPassphrase: 'pw' })),
    );
    expect(both.message).toContain('holds both signer.p12 and signerCert.pem/signerKey.pem');
    await unlink(join(dir, 'signerCert.pem'));
    await unlink(join(dir, 'wwdr.pem'));
    const noWwdr = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir: dir, signerKeyPassphrase: 'pw' })),
    );
    expect(noWwdr.message).toContain('incomplete: missing wwdr.pem.');
  });
});

describe('loadSigningIdentity without certificates', () => {
  it('refuses to start in production and points at the README', async () => {
    const error = await startupErrorOf(loadSigningIdentity(await options({ production: true })));
    expect(error.message).toContain('certificates.example/README.md');
    expect(error.message).toContain('CERTIFICATES_DIR');
  });

  it('generates a development identity once and reuses it', async () => {
    const o = await options({});
    const first = await loadSigningIdentity(o);
    expect(first).toMatchObject({
      isDevelopment: true,
      passTypeIdentifier: 'pass.dev.passkit-server',
      teamIdentifier: 'DEVTEAM000',
    });
    const dir = join(o.dataDir, 'dev-certificates');
    expect(await readFile(join(dir, 'signerCert.pem'), 'utf8')).toBe(first.signerCert);
    expect((await stat(join(dir, 'signerKey.pem'))).mode & 0o077).toBe(0);
    const cert = new X509Certificate(first.signerCert);
    expect(cert.checkIssued(new X509Certificate(first.wwdr))).toBe(true);
    const years = (first.notAfter.getTime() - Date.now()) / (365 * 24 * 3600 * 1000);
    expect(years).toBeGreaterThan(9.9);

    const second = await loadSigningIdentity(o);
    expect(second.signerCert).toBe(first.signerCert);
    expect(second.signerKey).toBe(first.signerKey);
  });

  it('uses configured ids for the development identity, and regenerates when they change', async () => {
    const o = await options({ passTypeIdentifier: 'pass.example.dev', teamIdentifier: 'ABCDE12345' });
    const first = await loadSigningIdentity(o);
    expect(first).toMatchObject({ passTypeIdentifier: 'pass.example.dev', teamIdentifier: 'ABCDE12345' });
    const changed = await loadSigningIdentity({ ...o, teamIdentifier: 'ZYXWV98765' });
    expect(changed.teamIdentifier).toBe('ZYXWV98765');
    expect(changed.signerCert).not.toBe(first.signerCert);
  });

  it('prefers certificates on disk over the development identity', async () => {
    const testPki = await pki();
    const identity = await loadSigningIdentity(await options({ certificatesDir: testPki.certificatesDir }));
    expect(identity.isDevelopment).toBe(false);
  });
});

describe('loadSigningIdentity with PEM contents from variables (SIGNER_CERT_PEM, SIGNER_KEY_PEM, WWDR_CERT_PEM)', () => {
  let testPki: TestPki;
  let other: TestPki;
  beforeAll(async () => {
    [testPki, other] = await Promise.all([pki(), pki()]);
  });

  function pemsOf(p: TestPki) {
    return { signerCert: p.signerCertPem, signerKey: p.signerKeyPem, wwdr: p.wwdrPem };
  }

  it('loads them in production without any CERTIFICATES_DIR', async () => {
    const apple = await pki({ appleNamedWwdr: true });
    const identity = await loadSigningIdentity(await options({ pems: pemsOf(apple), production: true }));
    expect(identity).toMatchObject({
      signerCert: apple.signerCertPem,
      signerKey: apple.signerKeyPem,
      wwdr: apple.wwdrPem,
      passTypeIdentifier: 'pass.test.passkit-server',
      teamIdentifier: 'TESTTEAM01',
      isDevelopment: false,
    });
  });

  it('uses them instead of the files in CERTIFICATES_DIR', async () => {
    const identity = await loadSigningIdentity(
      await options({ pems: pemsOf(testPki), certificatesDir: other.certificatesDir }),
    );
    expect(identity.signerCert).toBe(testPki.signerCertPem);
  });

  it('names the variables, not files, when they do not belong together', async () => {
    const wrongKey = await startupErrorOf(
      loadSigningIdentity(await options({ pems: { ...pemsOf(testPki), signerKey: other.signerKeyPem } })),
    );
    expect(wrongKey.message).toContain('SIGNER_KEY_PEM is not the private key of SIGNER_CERT_PEM');
    const wrongWwdr = await startupErrorOf(
      loadSigningIdentity(await options({ pems: { ...pemsOf(testPki), wwdr: other.wwdrPem } })),
    );
    expect(wrongWwdr.message).toContain('SIGNER_CERT_PEM was not issued by WWDR_CERT_PEM');
    const notPem = await startupErrorOf(
      loadSigningIdentity(await options({ pems: { ...pemsOf(testPki), wwdr: 'not a certificate' } })),
    );
    expect(notPem.message).toContain('WWDR_CERT_PEM is not a PEM certificate');
  });

  it('reads an encrypted SIGNER_KEY_PEM with SIGNER_KEY_PASSPHRASE', async () => {
    const encrypted = await pki({ keyPassphrase: 'correct horse' });
    const withoutPassphrase = await startupErrorOf(
      loadSigningIdentity(await options({ pems: pemsOf(encrypted) })),
    );
    expect(withoutPassphrase.message).toContain('SIGNER_KEY_PEM cannot be read: it is encrypted');
    const identity = await loadSigningIdentity(
      await options({ pems: pemsOf(encrypted), signerKeyPassphrase: 'correct horse' }),
    );
    expect(identity.signerKeyPassphrase).toBe('correct horse');
  });
});

describe("in production, a WWDR certificate that is not Apple's", () => {
  /** The generated development identity, copied into a CERTIFICATES_DIR as someone might deploy it. */
  async function copiedDevelopmentIdentity(): Promise<string> {
    const dir = join(await tempDir(), 'certificates');
    const pems = generateDevelopmentIdentity(
      { passTypeIdentifier: 'pass.dev.passkit-server', teamIdentifier: 'DEVTEAM000' },
      new Date(),
    );
    await mkdir(dir);
    await Promise.all(
      FILE_NAMES.map((name, i) =>
        writeFile(join(dir, name), [pems.signerCert, pems.signerKey, pems.wwdr][i] as string),
      ),
    );
    return dir;
  }

  it('refuses the development identity copied into CERTIFICATES_DIR, naming wwdr.pem and the opt-out', async () => {
    const certificatesDir = await copiedDevelopmentIdentity();
    const error = await startupErrorOf(
      loadSigningIdentity(await options({ certificatesDir, production: true })),
    );
    expect(error.message).toContain("wwdr.pem is not Apple's WWDR intermediate");
    expect(error.message).toContain('passkit-server Development WWDR CA (not Apple)');
    expect(error.message).toContain('ALLOW_INSECURE_PRODUCTION=true');
    // Outside production it is what development uses.
    expect((await loadSigningIdentity(await options({ certificatesDir }))).isDevelopment).toBe(false);
  });

  it('refuses a test CA given in WWDR_CERT_PEM, naming the variable', async () => {
    const testPki = await pki();
    const pems = {
      signerCert: testPki.signerCertPem,
      signerKey: testPki.signerKeyPem,
      wwdr: testPki.wwdrPem,
    };
    const error = await startupErrorOf(loadSigningIdentity(await options({ pems, production: true })));
    expect(error.message).toMatch(/^WWDR_CERT_PEM is not Apple's WWDR intermediate/);
  });

  it('only warns with ALLOW_INSECURE_PRODUCTION (a staging server), and says so in the log', async () => {
    const lines: string[] = [];
    const captured = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const identity = await loadSigningIdentity(
      await options({
        certificatesDir: await copiedDevelopmentIdentity(),
        production: true,
        allowInsecureProduction: true,
        log: captured,
      }),
    );
    expect(identity.passTypeIdentifier).toBe('pass.dev.passkit-server');
    const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string });
    expect(warnings).toContainEqual(
      expect.objectContaining({
        level: 40,
        msg: expect.stringMatching(/^ALLOW_INSECURE_PRODUCTION=true: wwdr.pem/),
      }),
    );
  });

  it("accepts a WWDR named as Apple's and issued by Apple Root CA", async () => {
    const apple = await pki({ appleNamedWwdr: true });
    const identity = await loadSigningIdentity(
      await options({ certificatesDir: apple.certificatesDir, production: true }),
    );
    expect(identity.passTypeIdentifier).toBe(apple.passTypeIdentifier);
  });
});

describe('loadIdentityFolders: one more identity per subfolder of CERTIFICATES_DIR', () => {
  it('reads each complete subfolder (PEMs or signer.p12) and leaves folders without identity files alone', async () => {
    const [top, brandB, brandC] = await Promise.all([
      pki(),
      pki({ passTypeIdentifier: 'pass.test.folder-b', teamIdentifier: 'FOLDERTEAM' }),
      pki({ passTypeIdentifier: 'pass.test.folder-c', teamIdentifier: 'FOLDERTEAM' }),
    ]);
    const certificatesDir = top.certificatesDir;
    await mkdir(join(certificatesDir, 'brand-b'));
    for (const name of FILE_NAMES) {
      await copyFile(join(brandB.certificatesDir, name), join(certificatesDir, 'brand-b', name));
    }
    await mkdir(join(certificatesDir, 'brand-c'));
    const pems = join(brandC.dir, 'signer-and-key.pem');
    await writeFile(pems, brandC.signerCertPem + brandC.signerKeyPem);
    await run('openssl', [
      'pkcs12',
      '-export',
      '-in',
      pems,
      '-out',
      join(certificatesDir, 'brand-c', P12_FILE),
      '-passout',
      'pass:folder',
    ]);
    await copyFile(join(brandC.certificatesDir, 'wwdr.pem'), join(certificatesDir, 'brand-c', 'wwdr.pem'));
    await mkdir(join(certificatesDir, 'notes'));

    const o = await options({ certificatesDir, signerKeyPassphrase: 'folder' });
    const folders = await loadIdentityFolders(o);
    expect(folders.map((each) => [each.passTypeIdentifier, each.teamIdentifier]).sort()).toEqual([
      ['pass.test.folder-b', 'FOLDERTEAM'],
      ['pass.test.folder-c', 'FOLDERTEAM'],
    ]);
    // A signer.p12 key is kept encrypted with SIGNER_KEY_PASSPHRASE, as the folder's own would be.
    expect(
      folders.find((each) => each.passTypeIdentifier === 'pass.test.folder-c')?.signerKeyPassphrase,
    ).toBe('folder');

    // A second identity of one pass type identifier is refused when the identities are put together.
    await mkdir(join(certificatesDir, 'again'));
    for (const name of FILE_NAMES) {
      await copyFile(join(brandB.certificatesDir, name), join(certificatesDir, 'again', name));
    }
    const twice = await loadIdentityFolders(o);
    const database = await openTestDatabase();
    try {
      const identities = () =>
        createIdentities({
          configured: [identityFromPki(top), ...twice],
          repository: database.repositories.identities,
          encryptionKey: undefined,
          production: false,
          clock: { now: () => new Date() },
          log,
        });
      expect(identities).toThrow(StartupError);
      expect(identities).toThrow('CERTIFICATES_DIR holds two identities of pass.test.folder-b');
    } finally {
      await database.close();
    }
  });

  it('stops the start at a subfolder with part of an identity, naming it', async () => {
    const top = await pki();
    await mkdir(join(top.certificatesDir, 'half'));
    await copyFile(join(top.certificatesDir, 'wwdr.pem'), join(top.certificatesDir, 'half', 'wwdr.pem'));
    const load = loadIdentityFolders(await options({ certificatesDir: top.certificatesDir }));
    await expect(load).rejects.toThrow(StartupError);
    await expect(load).rejects.toThrow(
      `${join(top.certificatesDir, 'half')} is incomplete: missing signerCert.pem, signerKey.pem`,
    );
  });
});
