import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverDataEnv } from '../support/database.js';
import {
  freePort,
  type ServerProcess,
  serverProcessTimeout,
  startServerProcess,
} from '../support/process.js';
import { startTokenAuthApns, type TokenAuthApns } from '../support/token-auth-apns.js';
import { WalletDevice } from '../support/wallet-device.js';

/*
 * Logs end up in log storage that many people can read. A whole run at LOG_LEVEL=trace, through the server
 * process as `npm start` runs it, must not write any of the run's secrets to stdout or stderr. ADMIN_TOKEN is
 * set, so the server prints no token on purpose.
 */
const adminToken = 'secrets-test-admin-token-0123456789';
const wrongAdminToken = 'secrets-test-wrong-admin-token-987654321';
const passTypeIdentifier = 'pass.dev.passkit-server';

let apns: TokenAuthApns;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  apns = await startTokenAuthApns();
});
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
  await apns?.mock.close();
});

function admin(server: ServerProcess, method: string, path: string, body?: unknown, token = adminToken) {
  return fetch(`${server.baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string) {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > 20_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A GET with the request target exactly as given (fetch would normalize it); answers the status line. */
function rawGet(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`),
    );
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    socket.on('end', () => resolve(answer.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
  });
}

/** The base64 body of a PEM, whole and line by line: either would be a leak. */
function pemBody(pem: string): string[] {
  const lines = pem.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('-----'));
  return [lines.join(''), ...lines];
}

describe('logs', () => {
  it('a full run’s logs contain none of its secrets', { timeout: serverProcessTimeout }, async () => {
    const port = await freePort();
    const data = await serverDataEnv(cleanups);
    const server = await startServerProcess(
      {
        ...apns.env,
        ...data,
        ADMIN_TOKEN: adminToken,
        PUBLIC_URL: `http://127.0.0.1:${port}`,
        LOG_LEVEL: 'trace',
      },
      port,
    );
    const secrets = new Map<string, string>([
      ['admin token', adminToken],
      ['wrong admin token', wrongAdminToken],
    ]);
    const secret = (name: string, value: string) => secrets.set(name, value);
    try {
      // Issue: passes, and their download links (the signature is the credential).
      const serials: string[] = [];
      let linkOfLoyalty = '';
      const bundles: Buffer[] = [];
      for (const template of ['loyalty', 'coupon']) {
        const created = await admin(server, 'POST', '/admin/passes', { template });
        expect(created.status).toBe(201);
        const { serialNumber, downloadUrl } = (await created.json()) as {
          serialNumber: string;
          downloadUrl: string;
        };
        const signature = new URL(downloadUrl).searchParams.get('signature') ?? '';
        expect(signature).not.toBe('');
        secret(`download signature of ${template}`, signature);
        if (template === 'loyalty') linkOfLoyalty = downloadUrl;
        const download = await fetch(downloadUrl);
        expect(download.status).toBe(200);
        bundles.push(Buffer.from(await download.arrayBuffer()));
        serials.push(serialNumber);
        const tampered = new URL(downloadUrl);
        tampered.searchParams.set('signature', `${signature.slice(0, -4)}AAAA`);
        expect((await fetch(tampered)).status).toBe(403);
      }

      // Register: three devices, each holding both passes.
      const devices = [new WalletDevice(), new WalletDevice(), new WalletDevice()];
      for (const [i, device] of devices.entries()) {
        secret(`deviceLibraryIdentifier ${i}`, device.deviceLibraryIdentifier);
        secret(`push token ${i}`, device.pushToken);
        for (const bundle of bundles) expect((await device.add(bundle)).status).toBe(201);
      }
      const [first, second, third] = devices as [WalletDevice, WalletDevice, WalletDevice];
      const [loyalty, coupon] = serials as [string, string];
      for (const serialNumber of serials)
        secret(`authenticationToken of ${serialNumber}`, first.held(serialNumber).authenticationToken);
      expect((await first.register(loyalty)).status).toBe(200);
      expect((await first.register(loyalty, 'not-the-authentication-token-0000')).status).toBe(401);
      const malformed = await fetch(first.registrationUrl(first.held(coupon)), {
        method: 'POST',
        headers: {
          authorization: `ApplePass ${first.held(coupon).authenticationToken}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ pushToken: first.pushToken, extra: first.deviceLibraryIdentifier }),
      });
      expect(malformed.status).toBe(400);

      // Fetch with the ApplePass token; then again with If-Modified-Since.
      expect(await first.sync(server.baseUrl, passTypeIdentifier)).toEqual(expect.arrayContaining(serials));
      expect(await first.fetchLatest(loyalty)).toBe(304);

      // Change: every device's push token is pushed; then one token is gone (410) and its device removed.
      const path = `/admin/passes/${passTypeIdentifier}/${loyalty}`;
      expect((await admin(server, 'PATCH', path, { fields: { points: 7 } })).status).toBe(200);
      const accepted = () => new Set(apns.mock.accepted().map((push) => push.pushToken));
      await waitFor(() => devices.every((device) => accepted().has(device.pushToken)), 'pushes');
      expect(await second.sync(server.baseUrl, passTypeIdentifier)).toContain(loyalty);
      apns.mock.failTokens.set(third.pushToken, {
        status: 410,
        reason: 'Unregistered',
        timestamp: Date.now(),
      });
      expect((await admin(server, 'PATCH', path, { fields: { points: 8 } })).status).toBe(200);
      await waitFor(async () => {
        const pass = (await (await admin(server, 'GET', path)).json()) as { registeredDevices: number };
        return pass.registeredDevices === devices.length - 1;
      }, 'the 410 device to be removed');

      // Device logs, and the admin reading them; a wrong admin token; an unknown route under a device.
      expect((await first.log(server.baseUrl, ['Web service error for pass: 500'])).status).toBe(200);
      expect((await admin(server, 'GET', '/admin/logs')).status).toBe(200);
      expect((await admin(server, 'GET', '/admin/passes', undefined, wrongAdminToken)).status).toBe(401);
      const unknown = await fetch(`${server.baseUrl}/v1/devices/${second.deviceLibraryIdentifier}/nothing`);
      expect(unknown.status).toBe(404);

      // Targets the router serves in other spellings: absolute-form (as through a forward proxy), percent-encoded
      // letters, a repeated parameter.
      const listPath = `/v1/devices/${first.deviceLibraryIdentifier}/registrations/${passTypeIdentifier}`;
      expect(await rawGet(port, `${server.baseUrl}${listPath}`)).toMatch(/^HTTP\/1\.1 20[04]/);
      expect(await rawGet(port, listPath.replace('/devices/', '/%64evices/'))).toMatch(/^HTTP\/1\.1 20[04]/);
      const link = new URL(linkOfLoyalty);
      const signature = link.searchParams.get('signature') ?? '';
      const expires = link.searchParams.get('expires') ?? '';
      const encodedKey = `${link.pathname}?expires=${expires}&%73ignature=${signature}`;
      expect((await fetch(`${server.baseUrl}${encodedKey}`)).status).toBe(200);
      const repeated = `${link.pathname}?signature=x&expires=${expires}&signature=${signature}`;
      expect((await fetch(`${server.baseUrl}${repeated}`)).status).toBe(400);

      // Leave.
      expect((await first.unregister(coupon)).status).toBe(200);
      expect((await second.unregister(loyalty)).status).toBe(200);
    } finally {
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }

    const providerTokens = new Set(
      apns.mock.received.map((push) => (push.headers.authorization ?? '').replace(/^bearer /, '')),
    );
    for (const [i, jwt] of [...providerTokens].entries()) {
      secret(`provider token ${i}`, jwt);
      secret(`provider token ${i} signature`, jwt.split('.')[2] ?? jwt);
    }
    for (const [i, body] of pemBody(apns.keyPem).entries()) secret(`APNs key PEM body (${i})`, body);
    const signerKey = await readFile(
      join(String(data.DATA_DIR), 'dev-certificates', 'signerKey.pem'),
      'utf8',
    );
    for (const [i, body] of pemBody(signerKey).entries()) secret(`signer key PEM body (${i})`, body);

    const output = server.output();
    // The run was logged, below info too (a quiet logger would pass trivially); nothing here logs at trace.
    expect(output).toContain('"level":20');
    expect(output).toContain('push delivered');
    expect(output).toContain('request completed');
    const leaked = [...secrets].filter(([, value]) => output.includes(value)).map(([name]) => name);
    expect(leaked, leaked.length > 0 ? output : '').toEqual([]);
  });
});
