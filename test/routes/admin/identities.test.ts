import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApnsConfig } from '../../../src/config.js';
import { StartupError } from '../../../src/errors.js';
import { projectRoot } from '../../../src/paths.js';
import { type Pushes, startPushes } from '../../../src/push/pushes.js';
import { sample, scrape } from '../../ops/metrics-text.js';
import { loadTestIdentities } from '../../support/identities.js';
import { capturingLogger } from '../../support/log-lines.js';
import { generateProviderKey, type MockApns, startMockApns } from '../../support/mock-apns.js';
import { createTestPki, identityFromPki, type TestPki } from '../../support/pki.js';
import { verifyPkpass } from '../../support/pkpass-verifier.js';
import { adminToken, startTestServer, type TestServer } from '../../support/server.js';
import { WalletDevice } from '../../support/wallet-device.js';

/*
 * Two brands in one server: identities added through the admin API (each its own test CA, pass type identifier
 * and team), passes of both signed with their own certificate (checked by openssl), pushes under each pass type
 * identifier with its own client certificate (the mock APNs refuses a certificate whose UID is not the topic),
 * one rotated and one expired while the other keeps working, all without a restart; keys never in clear.
 */

let server: TestServer;
let mock: MockApns;
let pushes: Pushes;
let brandA: TestPki;
let brandB: TestPki;
let brandA2: TestPki;
/** How far the server's clock is ahead of the real time. */
let clockAheadMs = 0;
const clock = { now: () => new Date(Date.now() + clockAheadMs) };
const captured = capturingLogger();
const P12_PASSWORD = 'brand b keychain password';
/** Brand B's signerKey.pem is encrypted with it (its .p12 has its own password). */
const KEY_PASSPHRASE = 'brand b key passphrase';

const sha256 = (pem: string) => new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();

/** The test PKI's certificate and key as Keychain exports them (openssl writes the same format). */
function p12Of(pki: TestPki, password: string): string {
  const pems = join(pki.dir, 'signer-and-key.pem');
  writeFileSync(pems, pki.signerCertPem + pki.signerKeyPem);
  const p12 = execFileSync('openssl', [
    ...['pkcs12', '-export', '-in', pems, '-passout', `pass:${password}`],
    ...['-passin', `pass:${KEY_PASSPHRASE}`],
  ]);
  return p12.toString('base64');
}

async function download(passTypeIdentifier: string, serialNumber: string): Promise<Buffer> {
  const response = await fetch(
    `${server.baseUrl}/admin/passes/${passTypeIdentifier}/${serialNumber}/pkpass`,
    {
      headers: { authorization: `Bearer ${adminToken}` },
    },
  );
  expect(response.status).toBe(200);
  return Buffer.from(await response.arrayBuffer());
}

/** The signer certificate inside a bundle's PKCS #7 signature, as openssl prints it. */
function signerOf(bundle: Buffer, wwdrPem: string): Promise<string> {
  return verifyPkpass(bundle, wwdrPem).then(({ files }) => {
    const signature = files.get('signature') ?? Buffer.alloc(0);
    const printed = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], {
      input: signature,
    });
    const certificates = printed
      .toString()
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
    return certificates?.map(sha256).join(' ') ?? '';
  });
}

beforeAll(async () => {
  [brandA, brandB, brandA2] = await Promise.all([
    createTestPki({ passTypeIdentifier: 'pass.test.brand-a', teamIdentifier: 'TEAMAAAAAA' }),
    createTestPki({
      passTypeIdentifier: 'pass.test.brand-b',
      teamIdentifier: 'TEAMBBBBBB',
      keyPassphrase: KEY_PASSPHRASE,
      validDays: 2,
    }),
    createTestPki({ passTypeIdentifier: 'pass.test.brand-a', teamIdentifier: 'TEAMAAAAAA' }),
  ]);
  server = await startTestServer({ clock, log: captured.log });
  mock = await startMockApns({ clientCa: [brandA.wwdrPem, brandB.wwdrPem, brandA2.wwdrPem].join('\n') });
  pushes = startPushes({
    config: certificateAuth(mock.origin),
    identities: server.identities,
    repositories: server.database.repositories,
    clock,
    log: captured.log,
    ca: mock.caPem,
  });
});
afterAll(async () => {
  await pushes?.close();
  await mock?.close();
  await server?.close();
});

/** APNS_AUTH=certificate (the default) against a mock APNs. */
function certificateAuth(origin: string): ApnsConfig {
  return {
    origin,
    auth: 'certificate',
    keyFile: undefined,
    keyId: undefined,
    teamId: undefined,
    pushType: 'background',
    priority: undefined,
    maxConcurrentStreams: 100,
    maxAttempts: 3,
    leaseMs: 60_000,
  };
}

/** Sends what the outbox holds now, and the pushes the mock got meanwhile. */
async function pushed() {
  const before = mock.received.length;
  pushes.worker.wake();
  await pushes.worker.drain();
  return mock.received.slice(before);
}

describe('pass type identities through the admin API', () => {
  const serials = { a: 'brand-a-0001', b: 'brand-b-0001' };
  const device = new WalletDevice();

  it('adds one from PEMs and one from a .p12, and refuses a second of the same pass type identifier', async () => {
    const a = await server.admin('POST', '/admin/identities', {
      certificate: brandA.signerCertPem,
      privateKey: brandA.signerKeyPem,
      wwdr: brandA.wwdrPem,
    });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({
      passTypeIdentifier: 'pass.test.brand-a',
      teamIdentifier: 'TEAMAAAAAA',
      source: 'api',
      expired: false,
      certificateSha256: sha256(brandA.signerCertPem),
      apns: { auth: 'certificate' },
    });
    const b = await server.admin('POST', '/admin/identities', {
      p12: p12Of(brandB, P12_PASSWORD),
      passphrase: P12_PASSWORD,
      wwdr: brandB.wwdrPem,
    });
    expect(b.status).toBe(201);
    expect(b.body).toMatchObject({
      passTypeIdentifier: 'pass.test.brand-b',
      teamIdentifier: 'TEAMBBBBBB',
      daysLeft: 1,
    });
    const again = await server.admin('POST', '/admin/identities', {
      certificate: brandA.signerCertPem,
      privateKey: brandA.signerKeyPem,
      wwdr: brandA.wwdrPem,
    });
    expect(again.status).toBe(409);
    expect(again.body.message).toContain('PUT /admin/identities/pass.test.brand-a');

    const list = await server.admin('GET', '/admin/identities');
    const ids = (list.body.identities as Array<{ passTypeIdentifier: string }>).map(
      (each) => each.passTypeIdentifier,
    );
    expect(ids).toEqual(['pass.test.brand-a', 'pass.test.brand-b', server.identity.passTypeIdentifier]);
    expect(JSON.stringify([a.body, b.body, list.body])).not.toMatch(/PRIVATE KEY|BEGIN/);
  });

  it('names what is wrong with an upload', async () => {
    const cases: Array<[unknown, number, string]> = [
      [
        {
          certificate: brandA.signerCertPem,
          privateKey: brandB.signerKeyPem,
          passphrase: KEY_PASSPHRASE,
          wwdr: brandA.wwdrPem,
        },
        400,
        'privateKey is not the private key of certificate',
      ],
      [
        { certificate: brandA.signerCertPem, privateKey: brandA.signerKeyPem, wwdr: brandB.wwdrPem },
        400,
        'certificate was not issued by wwdr',
      ],
      [
        { certificate: brandB.signerCertPem, privateKey: brandB.signerKeyPem, wwdr: brandB.wwdrPem },
        400,
        'it is encrypted: set passphrase',
      ],
      [
        { p12: p12Of(brandB, P12_PASSWORD), passphrase: 'wrong', wwdr: brandB.wwdrPem },
        400,
        'wrong passphrase',
      ],
      [
        { certificate: brandA.signerCertPem, wwdr: brandA.wwdrPem },
        400,
        'give certificate and privateKey, or p12',
      ],
      [
        { certificate: 'nope', privateKey: brandA.signerKeyPem, wwdr: brandA.wwdrPem },
        400,
        'certificate is not a PEM certificate',
      ],
      [
        {
          certificate: brandA.signerCertPem,
          privateKey: brandA.signerKeyPem,
          wwdr: brandA.wwdrPem,
          apns: { auth: 'token', key: brandA.signerKeyPem, keyId: 'KEY1234567' },
        },
        400,
        'apns.key must be the .p8 key',
      ],
    ];
    for (const [body, status, message] of cases) {
      const answer = await server.admin('POST', '/admin/identities', body);
      expect({ status: answer.status, message: answer.body.message }).toEqual({
        status,
        message: expect.stringContaining(message),
      });
    }
    // Two adds of one new identity at once: one is added, the other is told it exists.
    const racing = await createTestPki({ passTypeIdentifier: 'pass.test.racing' });
    const add = () =>
      server.admin('POST', '/admin/identities', {
        certificate: racing.signerCertPem,
        privateKey: racing.signerKeyPem,
        wwdr: racing.wwdrPem,
      });
    const statuses = (await Promise.all([add(), add()])).map((answer) => answer.status).sort();
    expect(statuses).toEqual([201, 409]);
    expect((await server.admin('DELETE', '/admin/identities/pass.test.racing')).status).toBe(204);
    const expired = await createTestPki({ passTypeIdentifier: 'pass.test.expired', expired: true });
    const refused = await server.admin('POST', '/admin/identities', {
      certificate: expired.signerCertPem,
      privateKey: expired.signerKeyPem,
      wwdr: expired.wwdrPem,
    });
    expect(refused.status).toBe(400);
    expect(refused.body.message).toContain('certificate expired on');
  });

  it("signs each pass of a brand's template with its identity, and pushes each under its own topic with its own certificate", async () => {
    for (const [brand, pki, serialNumber] of [
      ['a', brandA, serials.a],
      ['b', brandB, serials.b],
    ] as const) {
      // Each brand's template, uploaded as a zip (Info-ZIP's) for its identity.
      const zip = execFileSync('zip', ['-q', '-r', '-', 'loyalty.pass'], {
        cwd: join(projectRoot, 'models'),
      });
      const uploaded = await fetch(
        `${server.baseUrl}/admin/templates/brand-${brand}-card/versions?passTypeIdentifier=${pki.passTypeIdentifier}`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/zip' },
          body: new Uint8Array(zip),
        },
      );
      expect(uploaded.status).toBe(201);
      expect(await uploaded.json()).toMatchObject({ passTypeIdentifier: pki.passTypeIdentifier, version: 1 });
      const created = await server.admin('POST', '/admin/passes', {
        serialNumber,
        template: `brand-${brand}-card`,
        fields: { points: brand === 'a' ? 1 : 2 },
      });
      expect(created.status).toBe(201);
      expect(created.body.passTypeIdentifier).toBe(pki.passTypeIdentifier);
      const bundle = await download(pki.passTypeIdentifier, serialNumber);
      // verifyPkpass checks the signature chains to this brand's CA with openssl, and pass.json names its ids.
      const verified = await verifyPkpass(bundle, pki.wwdrPem);
      expect(verified.passJson).toMatchObject({
        passTypeIdentifier: pki.passTypeIdentifier,
        teamIdentifier: pki.teamIdentifier,
      });
      expect(await signerOf(bundle, pki.wwdrPem)).toContain(sha256(pki.signerCertPem));
      expect((await device.add(bundle)).status).toBe(201);
    }
    const otherBrand = await server.admin('POST', '/admin/passes', {
      passTypeIdentifier: brandB.passTypeIdentifier,
      template: 'brand-a-card',
    });
    expect(otherBrand.status).toBe(400);
    expect(otherBrand.body.message).toContain('makes passes of pass.test.brand-a only');
    const unknown = await server.admin('POST', '/admin/passes', {
      passTypeIdentifier: 'pass.test.nobody',
      template: 'loyalty',
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.message).toContain('No identity for passTypeIdentifier "pass.test.nobody"');

    for (const pki of [brandA, brandB]) {
      const serial = pki === brandA ? serials.a : serials.b;
      const changed = await server.admin('PATCH', `/admin/passes/${pki.passTypeIdentifier}/${serial}`, {
        fields: { points: 10 },
      });
      expect(changed.status).toBe(200);
    }
    const received = await pushed();
    expect(
      received
        .map(({ pushToken, topic, status, clientCertificateSha256 }) => ({
          pushToken,
          topic,
          status,
          clientCertificateSha256,
        }))
        .sort((x, y) => x.topic.localeCompare(y.topic)),
    ).toEqual([
      {
        pushToken: device.pushToken,
        topic: 'pass.test.brand-a',
        status: 200,
        clientCertificateSha256: sha256(brandA.signerCertPem),
      },
      {
        pushToken: device.pushToken,
        topic: 'pass.test.brand-b',
        status: 200,
        clientCertificateSha256: sha256(brandB.signerCertPem),
      },
    ]);
    // Wallet then asks each pass type identifier which of its passes changed.
    expect(await device.sync(server.baseUrl, 'pass.test.brand-a')).toEqual([serials.a]);
    expect(await device.sync(server.baseUrl, 'pass.test.brand-b')).toEqual([serials.b]);
  });

  it('rotates a certificate without a restart: new versions are signed and pushed with the new one', async () => {
    const wrongId = await server.admin('PUT', '/admin/identities/pass.test.brand-b', {
      certificate: brandA2.signerCertPem,
      privateKey: brandA2.signerKeyPem,
      wwdr: brandA2.wwdrPem,
    });
    expect(wrongId.status).toBe(400);
    expect(wrongId.body.message).toContain(
      'The certificate is for pass.test.brand-a (its subject UID), not pass.test.brand-b',
    );

    // Another instance on the same database, which re-reads changed identities every 20 ms.
    const elsewhere = await loadTestIdentities(server.identity, server.database.repositories, {
      refreshIntervalMs: 20,
    });
    expect((await elsewhere.find('pass.test.brand-a'))?.certificateSha256).toBe(sha256(brandA.signerCertPem));

    const rotated = await server.admin('PUT', '/admin/identities/pass.test.brand-a', {
      certificate: brandA2.signerCertPem,
      privateKey: brandA2.signerKeyPem,
      wwdr: brandA2.wwdrPem,
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body.certificateSha256).toBe(sha256(brandA2.signerCertPem));

    const changed = await server.admin('PATCH', `/admin/passes/pass.test.brand-a/${serials.a}`, {
      fields: { points: 11 },
    });
    expect(changed.status).toBe(200);
    const bundle = await download('pass.test.brand-a', serials.a);
    expect(await signerOf(bundle, brandA2.wwdrPem)).toContain(sha256(brandA2.signerCertPem));
    const received = await pushed();
    expect(received.map((push) => [push.topic, push.status, push.clientCertificateSha256])).toEqual([
      ['pass.test.brand-a', 200, sha256(brandA2.signerCertPem)],
    ]);

    await expect
      .poll(async () => (await elsewhere.find('pass.test.brand-a'))?.certificateSha256)
      .toBe(sha256(brandA2.signerCertPem));
    elsewhere.close();
  });

  it('an expired identity degrades only itself: its passes are served as last signed, the other brand works on', async () => {
    const lastSigned = await download('pass.test.brand-b', serials.b);
    clockAheadMs = 3 * 86_400_000;

    const refused = await server.admin('PATCH', `/admin/passes/pass.test.brand-b/${serials.b}`, {
      fields: { points: 20 },
    });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({
      error: 'certificate_expired',
      message: expect.stringContaining('pass.test.brand-b'),
    });
    const held = device.held(serials.b);
    const latest = await fetch(`${server.baseUrl}/v1/passes/pass.test.brand-b/${serials.b}`, {
      headers: { authorization: `ApplePass ${held.authenticationToken}` },
    });
    expect(latest.status).toBe(200);
    expect(Buffer.from(await latest.arrayBuffer()).equals(lastSigned)).toBe(true);

    const works = await server.admin('PATCH', `/admin/passes/pass.test.brand-a/${serials.a}`, {
      fields: { points: 12 },
    });
    expect(works.status).toBe(200);
    expect((await pushed()).map((push) => [push.topic, push.status])).toEqual([['pass.test.brand-a', 200]]);
    const listed = await server.admin('GET', '/admin/identities/pass.test.brand-b');
    expect(listed.body).toMatchObject({ expired: true, daysLeft: -2 });
    // /metrics has the days left of each identity.
    const metrics = await scrape(`${server.baseUrl}/metrics`);
    const daysLeft = (id: string) =>
      sample(metrics, 'passkit_signing_certificate_days_left', { pass_type_identifier: id });
    expect(daysLeft('pass.test.brand-b')).toBe(-2);
    expect(daysLeft('pass.test.brand-a')).toBe(361);
    clockAheadMs = 0;
  });

  it('removes an identity only once no pass needs it, and never a configured one', async () => {
    const inUse = await server.admin('DELETE', '/admin/identities/pass.test.brand-b');
    expect(inUse.status).toBe(409);
    expect((await server.admin('DELETE', `/admin/passes/pass.test.brand-b/${serials.b}`)).status).toBe(204);
    expect((await server.admin('DELETE', '/admin/identities/pass.test.brand-b')).status).toBe(204);
    expect((await server.admin('GET', '/admin/identities/pass.test.brand-b')).status).toBe(404);
    expect((await server.admin('DELETE', '/admin/identities/pass.test.brand-b')).status).toBe(404);
    const configured = await server.admin(
      'DELETE',
      `/admin/identities/${server.identity.passTypeIdentifier}`,
    );
    expect(configured.status).toBe(409);
    expect(configured.body.message).toContain('configured');
  });

  it('keeps private keys sealed in the database, out of logs, and opens them only with the same key', async () => {
    const rows = await server.database.prisma.$queryRaw<
      Array<Record<string, unknown>>
    >`SELECT * FROM signing_identities`;
    expect(rows).toHaveLength(1);
    const stored = JSON.stringify(rows, (_key, value: unknown) =>
      value instanceof Uint8Array
        ? Buffer.from(value).toString('latin1')
        : typeof value === 'bigint'
          ? String(value)
          : value,
    );
    const keyBody = (pem: string) =>
      pem
        .split('\n')
        .filter((line) => line && !line.startsWith('-----'))
        .join('');
    const derOf = (pki: TestPki) =>
      execFileSync('openssl', [
        'pkey',
        '-in',
        join(pki.certificatesDir, 'signerKey.pem'),
        '-outform',
        'DER',
        '-passin',
        `pass:${KEY_PASSPHRASE}`,
      ]);
    for (const pki of [brandA, brandA2]) {
      expect(stored).not.toContain(keyBody(pki.signerKeyPem).slice(0, 40));
      expect(stored).not.toContain(derOf(pki).subarray(0, 40).toString('latin1'));
    }
    expect(stored).not.toMatch(/PRIVATE KEY/);
    const logged = JSON.stringify(captured.lines);
    expect(logged).not.toMatch(/PRIVATE KEY|BEGIN/);
    expect(logged).not.toContain(P12_PASSWORD);
    expect(logged).toContain('identity certificate rotated');

    const otherKey = loadTestIdentities(server.identity, server.database.repositories, {
      encryptionKey: Buffer.alloc(32, 9),
    });
    await expect(otherKey).rejects.toThrow(StartupError);
    await expect(otherKey).rejects.toThrow('does not open the keys of the identity pass.test.brand-a');
    const noKey = loadTestIdentities(server.identity, server.database.repositories, {
      encryptionKey: undefined,
    });
    await expect(noKey).rejects.toThrow('IDENTITY_ENCRYPTION_KEY is not set');
  });
});

describe('without IDENTITY_ENCRYPTION_KEY', () => {
  it('refuses identities through the API and says why', async () => {
    const plain = await startTestServer({ identityEncryptionKey: undefined });
    try {
      const pki = await createTestPki({ passTypeIdentifier: 'pass.test.no-key' });
      const answer = await plain.admin('POST', '/admin/identities', {
        certificate: pki.signerCertPem,
        privateKey: readFileSync(join(pki.certificatesDir, 'signerKey.pem'), 'utf8'),
        wwdr: pki.wwdrPem,
      });
      expect(answer.status).toBe(409);
      expect(answer.body.message).toContain('IDENTITY_ENCRYPTION_KEY is not set');
    } finally {
      await plain.close();
    }
  });
});

describe('an identity with an APNs .p8 key of its own', () => {
  it('pushes with provider tokens of its own key and team', async () => {
    const key = generateProviderKey();
    const tokenMock = await startMockApns({
      publicKeyPem: key.publicKeyPem,
      keyId: 'BRANDCKEY1',
      teamId: 'TEAMCCCCCC',
    });
    const own = await startTestServer();
    const tokenPushes = startPushes({
      config: certificateAuth(tokenMock.origin),
      identities: own.identities,
      repositories: own.database.repositories,
      clock: { now: () => new Date() },
      log: captured.log,
      ca: tokenMock.caPem,
    });
    try {
      const brandC = await createTestPki({
        passTypeIdentifier: 'pass.test.brand-c',
        teamIdentifier: 'TEAMCCCCCC',
      });
      const added = await own.admin('POST', '/admin/identities', {
        certificate: brandC.signerCertPem,
        privateKey: brandC.signerKeyPem,
        wwdr: brandC.wwdrPem,
        apns: { auth: 'token', key: key.keyPem, keyId: 'BRANDCKEY1' },
      });
      expect(added.status).toBe(201);
      expect(added.body.apns).toEqual({ auth: 'token', keyId: 'BRANDCKEY1', teamId: 'TEAMCCCCCC' });
      expect(JSON.stringify(added.body)).not.toMatch(/PRIVATE KEY/);
      const created = await own.admin('POST', '/admin/passes', {
        passTypeIdentifier: 'pass.test.brand-c',
        serialNumber: 'brand-c-0001',
        template: 'loyalty',
      });
      expect(created.status).toBe(201);
      const bundle = await (
        await fetch(`${own.baseUrl}/admin/passes/pass.test.brand-c/brand-c-0001/pkpass`, {
          headers: { authorization: `Bearer ${adminToken}` },
        })
      ).arrayBuffer();
      const device = new WalletDevice();
      expect((await device.add(Buffer.from(bundle))).status).toBe(201);
      expect(
        (await own.admin('PATCH', '/admin/passes/pass.test.brand-c/brand-c-0001', { fields: { points: 3 } }))
          .status,
      ).toBe(200);
      tokenPushes.worker.wake();
      await tokenPushes.worker.drain();
      // The mock verifies each provider token (ES256, kid BRANDCKEY1, iss TEAMCCCCCC) with the key's public half.
      expect(tokenMock.received.map((push) => [push.topic, push.status, push.pushToken])).toEqual([
        ['pass.test.brand-c', 200, device.pushToken],
      ]);
      expect(tokenMock.received[0]?.headers.authorization).toMatch(/^bearer /i);
    } finally {
      await tokenPushes.close();
      await tokenMock.close();
      await own.close();
    }
  });
});

describe('a certificate about to expire', () => {
  it('is warned of once a day while the server runs, not only at start', async () => {
    const soon = await createTestPki({ passTypeIdentifier: 'pass.test.expires-soon', validDays: 10 });
    const logged = capturingLogger();
    let aheadMs = 0;
    const configured = {
      ...identityFromPki(soon),
      notAfter: new Date(new X509Certificate(soon.signerCertPem).validTo),
    };
    const identities = await loadTestIdentities(configured, server.database.repositories, {
      clock: { now: () => new Date(Date.now() + aheadMs) },
      log: logged.log,
      refreshIntervalMs: 20,
    });
    try {
      const warnings = () => logged.lines.filter((line) => String(line.msg).includes('expires soon')).length;
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(warnings()).toBe(0);
      aheadMs = 25 * 3600 * 1000;
      await expect.poll(warnings).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(warnings()).toBe(1);
      aheadMs = 50 * 3600 * 1000;
      await expect.poll(warnings).toBe(2);
    } finally {
      identities.close();
    }
  });
});
