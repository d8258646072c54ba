import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/cli/doctor.js';
import { UNKNOWN_PUSH_TOKEN } from '../../src/cli/doctor-apns.js';
import type { Finding } from '../../src/cli/findings.js';
import { openDatabase } from '../../src/db/database.js';
import { projectRoot } from '../../src/paths.js';
import { loadTestIdentities } from '../support/identities.js';
import { generateProviderKey, type MockApns, startMockApns } from '../support/mock-apns.js';
import { createTestPki, identityFromPki, type TestPki } from '../support/pki.js';
import { runOwned } from '../support/process.js';

/*
 * `doctor` in-process (runDoctor(env)) against good and bad configurations: a test PKI, the embedded database
 * with its migrations, and the mock APNs in token mode answering 400 BadDeviceToken for the unknown token,
 * as Apple does.
 */

const KEY_ID = 'DOCTORKEY1';
const productionToken = randomBytes(32).toString('hex');
let pki: TestPki;
let expiredPki: TestPki;
let mock: MockApns;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  [pki, expiredPki] = await Promise.all([createTestPki(), createTestPki({ expired: true })]);
  const key = generateProviderKey();
  mock = await startMockApns({ keyId: KEY_ID, teamId: pki.teamIdentifier, publicKeyPem: key.publicKeyPem });
  mock.failTokens.set(UNKNOWN_PUSH_TOKEN, { status: 400, reason: 'BadDeviceToken' });
  dir = await mkdtemp(join(tmpdir(), 'doctor-test-'));
  await writeFile(join(dir, 'apns.p8'), key.keyPem);
  await writeFile(join(dir, 'wrong.p8'), generateProviderKey().keyPem);
  // The embedded database as a first start leaves it: created, migrations applied.
  const database = await openDatabase({ dataDir: join(dir, 'data'), log: pino({ level: 'silent' }) });
  await database.close();
  env = {
    NODE_ENV: 'development',
    DATA_DIR: join(dir, 'data'),
    CERTIFICATES_DIR: pki.certificatesDir,
    PUBLIC_URL: 'https://passes.example.com',
    APNS_ORIGIN: mock.origin,
    APNS_KEY_FILE: join(dir, 'apns.p8'),
    APNS_KEY_ID: KEY_ID,
  };
});

afterAll(async () => {
  await mock.close();
  await Promise.all([pki, expiredPki].map((p) => rm(p.dir, { recursive: true, force: true })));
  await rm(dir, { recursive: true, force: true });
});

const doctor = (overrides: NodeJS.ProcessEnv) => runDoctor({ ...env, ...overrides }, { apnsCa: mock.caPem });
const withStatus = (findings: Finding[], status: Finding['status']) =>
  findings.filter((f) => f.status === status).map((f) => f.rule);
const find = (findings: Finding[], rule: string) => findings.find((f) => f.rule === rule);

describe('doctor', () => {
  it('a healthy configuration: no failure; the test CA is flagged as not Apple', async () => {
    const findings = await doctor({});
    expect(withStatus(findings, 'fail')).toEqual([]);
    expect(withStatus(findings, 'warn')).toEqual(['identity/wwdr']);
    expect(withStatus(findings, 'pass')).toEqual(
      expect.arrayContaining([
        'identity/key-matches-certificate',
        'identity/issued-by-wwdr',
        'signer/validity',
        'signer/pass-type-id-extension',
        'templates/loyalty',
        'public-url/https',
        'database/reachable',
        'database/migrations',
        'apns/tls-handshake',
        'apns/credentials-accepted',
      ]),
    );
    expect(find(findings, 'apns/credentials-accepted')?.detail).toMatch(/BadDeviceToken.*accepted/);
    const push = mock.received.find((r) => r.pushToken === UNKNOWN_PUSH_TOKEN);
    expect(push?.topic).toBe(pki.passTypeIdentifier);
  });

  it('an expired certificate fails signer/validity with the fix, and the templates with it', async () => {
    const findings = await doctor({ CERTIFICATES_DIR: expiredPki.certificatesDir });
    const validity = find(findings, 'signer/validity');
    expect(validity?.status).toBe('fail');
    expect(validity?.detail).toMatch(/expired on/);
    expect(validity?.fix).toMatch(/new certificate/);
    expect(find(findings, 'templates/loyalty')?.detail).toMatch(/signer\/validity/);
  });

  it("reads Keychain's signer.p12 like the server, and names a wrong password", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'doctor-p12-'));
    try {
      const pem = join(dir, 'signer.pem');
      await writeFile(pem, pki.signerCertPem + pki.signerKeyPem);
      const certificates = join(dir, 'certificates');
      await mkdir(certificates);
      await runOwned('openssl', [
        'pkcs12',
        '-export',
        '-in',
        pem,
        '-out',
        join(certificates, 'signer.p12'),
        '-passout',
        'pass:pw',
      ]);
      await writeFile(join(certificates, 'wwdr.pem'), pki.wwdrPem);
      const good = await doctor({ CERTIFICATES_DIR: certificates, SIGNER_KEY_PASSPHRASE: 'pw' });
      expect(withStatus(good, 'fail')).toEqual([]);
      expect(find(good, 'identity/key-matches-certificate')?.status).toBe('pass');
      const wrong = await doctor({ CERTIFICATES_DIR: certificates, SIGNER_KEY_PASSPHRASE: 'other' });
      expect(find(wrong, 'identity/source')).toMatchObject({
        status: 'fail',
        detail: expect.stringContaining('signer.p12 cannot be read: wrong SIGNER_KEY_PASSPHRASE'),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a TEAM_IDENTIFIER that is not the certificate OU fails exactly that rule', async () => {
    const findings = await doctor({ TEAM_IDENTIFIER: 'OTHERTEAM1' });
    expect(withStatus(findings, 'fail')).toEqual(['signer/team-identifier']);
    expect(find(findings, 'signer/team-identifier')?.detail).toMatch(/"TESTTEAM01".*"OTHERTEAM1"/);
  });

  it('a wrong APNs key: 403 InvalidProviderToken fails the credentials with the fix', async () => {
    const findings = await doctor({ APNS_KEY_FILE: join(dir, 'wrong.p8') });
    expect(withStatus(findings, 'fail')).toEqual(['apns/credentials-accepted']);
    const credentials = find(findings, 'apns/credentials-accepted');
    expect(credentials?.detail).toBe('APNs refused the push: InvalidProviderToken');
    expect(credentials?.fix).toMatch(/APNS_KEY_ID/);
  });

  it('the APNs sandbox is a warning: pass updates only work in production', async () => {
    const findings = await doctor({ APNS_ORIGIN: 'https://api.sandbox.push.apple.com' });
    const environment = find(findings, 'apns/production-environment');
    expect(environment?.status).toBe('warn');
    expect(environment?.why).toMatch(/production/);
  });

  it('production without certificates: the development identity is a failure', async () => {
    const empty = join(dir, 'no-certificates');
    await mkdir(empty, { recursive: true });
    const findings = await doctor({
      NODE_ENV: 'production',
      ADMIN_TOKEN: productionToken,
      CERTIFICATES_DIR: empty,
    });
    expect(find(findings, 'identity/development')?.status).toBe('fail');
  });

  it("production with a WWDR that is not Apple's: a failure, a warning with ALLOW_INSECURE_PRODUCTION", async () => {
    const production = { NODE_ENV: 'production', ADMIN_TOKEN: productionToken };
    expect(find(await doctor(production), 'identity/wwdr')?.status).toBe('fail');
    const staging = await doctor({ ...production, ALLOW_INSECURE_PRODUCTION: 'true' });
    expect(find(staging, 'identity/wwdr')?.status).toBe('warn');
  });

  it("checks each subfolder's identity like the folder's own, naming the folder in its rules", async () => {
    const certificatesDir = join(dir, 'brands');
    await cp(pki.certificatesDir, certificatesDir, { recursive: true });
    await cp(expiredPki.certificatesDir, join(certificatesDir, 'expired-brand'), { recursive: true });
    await mkdir(join(certificatesDir, 'half-brand'));
    await cp(join(pki.certificatesDir, 'wwdr.pem'), join(certificatesDir, 'half-brand', 'wwdr.pem'));
    const findings = await doctor({ CERTIFICATES_DIR: certificatesDir });
    expect(find(findings, 'expired-brand:signer/validity')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('expired on'),
    });
    expect(find(findings, 'expired-brand:identity/key-matches-certificate')?.status).toBe('pass');
    expect(find(findings, 'half-brand:identity/source')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('missing signerCert.pem'),
    });
    expect(find(findings, 'signer/validity')?.status).toBe('pass');
  });

  it('opens each identity stored through the API with IDENTITY_ENCRYPTION_KEY, and names one it cannot open', async () => {
    const dataDir = join(dir, 'stored-identities');
    const database = await openDatabase({ dataDir, log: pino({ level: 'silent' }) });
    const key = randomBytes(32);
    const identities = await loadTestIdentities(identityFromPki(pki), database.repositories, {
      encryptionKey: key,
    });
    const brand = await createTestPki({
      passTypeIdentifier: 'pass.test.doctor-brand',
      teamIdentifier: 'DOCTORTEAM',
    });
    await identities.save(
      { signer: { certificate: brand.signerCertPem, privateKey: brand.signerKeyPem }, wwdr: brand.wwdrPem },
      'new',
    );
    identities.close();
    await database.close();
    const rule = 'identities/stored/pass.test.doctor-brand';
    const opened = await doctor({ DATA_DIR: dataDir, IDENTITY_ENCRYPTION_KEY: key.toString('base64') });
    expect(find(opened, rule)).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining('is valid until'),
    });
    const wrongKey = await doctor({
      DATA_DIR: dataDir,
      IDENTITY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    });
    expect(find(wrongKey, rule)).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('sealed with another key'),
    });
    const noKey = await doctor({ DATA_DIR: dataDir });
    expect(find(noKey, rule)).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('IDENTITY_ENCRYPTION_KEY is not set'),
    });
    await rm(brand.dir, { recursive: true, force: true });
  });

  it('an invalid configuration stops at the config finding', async () => {
    const findings = await doctor({ PORT: 'not-a-port' });
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ status: 'fail', rule: 'config' });
    expect(findings[0]?.detail).toMatch(/PORT/);
  });

  it('an http PUBLIC_URL fails outside localhost', async () => {
    const findings = await doctor({ PUBLIC_URL: 'http://passes.example.com' });
    expect(find(findings, 'public-url/https')?.status).toBe('fail');
  });

  describe('--external', () => {
    let server: Server;
    let status = 204;
    let origin: string;
    beforeAll(async () => {
      server = createServer((request, response) => {
        response.statusCode = request.url?.startsWith('/v1/devices/') ? status : 404;
        response.end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('passes when the list endpoint answers 204 for an unknown device', async () => {
      status = 204;
      const findings = await runDoctor(
        { ...env, PUBLIC_URL: origin },
        { apnsCa: mock.caPem, external: true },
      );
      expect(find(findings, 'public-url/answers')?.status).toBe('pass');
    });

    it('fails with the fix when it demands Authorization', async () => {
      status = 401;
      const findings = await runDoctor(
        { ...env, PUBLIC_URL: origin },
        { apnsCa: mock.caPem, external: true },
      );
      const answers = find(findings, 'public-url/answers');
      expect(answers?.status).toBe('fail');
      expect(answers?.fix).toMatch(/Authorization/);
    });
  });

  it('the bin entry runs through tsx and exits 1 on a failure, with --json', async () => {
    const result = await runOwned(process.execPath, [
      join(projectRoot, 'bin', 'passkit-server.mjs'),
      'validate',
      join(dir, 'apns.p8'),
      '--json',
    ]).catch((error: { code: number; stdout: string }) => error);
    expect('code' in result ? result.code : 0).toBe(1);
    const report = JSON.parse(result.stdout) as { ok: boolean; findings: Finding[] };
    expect(report.ok).toBe(false);
    expect(report.findings[0]?.rule).toBe('zip/archive');
  });
});
