import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverDataEnv } from '../support/database.js';
import { generateProviderKey, type MockApns, startMockApns } from '../support/mock-apns.js';
import {
  freePort,
  type ServerProcess,
  serverProcessTimeout,
  startServerProcess,
} from '../support/process.js';
import { WalletDevice } from '../support/wallet-device.js';

/*
 * The whole path through real processes: the server as `npm start` runs it, Wallet devices over HTTP, and a mock
 * APNs over HTTP/2 + TLS that verifies the provider token, topic and `{}` body.
 */
const adminToken = 'delivery-test-admin-token-0123456789';
const passTypeIdentifier = 'pass.dev.passkit-server';
let mock: MockApns;
let baseEnv: Record<string, string>;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  const key = generateProviderKey();
  mock = await startMockApns({ publicKeyPem: key.publicKeyPem, keyId: 'KEY1234567', teamId: 'DEVTEAM000' });
  const dir = await mkdtemp(join(tmpdir(), 'pks-delivery-'));
  await writeFile(join(dir, 'apns.p8'), key.keyPem);
  await writeFile(join(dir, 'mock-ca.pem'), mock.caPem);
  baseEnv = {
    ADMIN_TOKEN: adminToken,
    APNS_ORIGIN: mock.origin,
    APNS_KEY_FILE: join(dir, 'apns.p8'),
    APNS_KEY_ID: 'KEY1234567',
    NODE_EXTRA_CA_CERTS: join(dir, 'mock-ca.pem'),
    LOG_LEVEL: 'warn',
  };
});
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
  await mock?.close();
});

async function serverEnv(extra: Record<string, string> = {}) {
  return { ...baseEnv, ...(await serverDataEnv(cleanups)), ...extra };
}

async function admin(server: ServerProcess, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${adminToken}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function passOnDevices(server: ServerProcess, count: number) {
  const created = await admin(server, 'POST', '/admin/passes', { template: 'loyalty' });
  const serialNumber = String(created.body.serialNumber);
  const url = String(created.body.downloadUrl).replace('localhost', '127.0.0.1');
  const bundle = Buffer.from(await (await fetch(url)).arrayBuffer());
  const devices = Array.from({ length: count }, () => new WalletDevice());
  for (let i = 0; i < devices.length; i += 50) {
    await Promise.all(
      devices.slice(i, i + 50).map(async (device) => {
        // The pass's webServiceURL is PUBLIC_URL (localhost); the device reaches it on the loopback address.
        expect((await device.add(bundle)).status).toBe(201);
      }),
    );
  }
  return { serialNumber, devices, path: `/admin/passes/${passTypeIdentifier}/${serialNumber}` };
}

function acceptedTokens(since: number) {
  return mock.received
    .filter((push) => push.status === 200 && push.at >= since)
    .map((push) => push.pushToken);
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('update pushes through APNs', { timeout: serverProcessTimeout }, () => {
  it('sends exactly one valid push per registered device for each change; a 410 device is removed', async () => {
    const port = await freePort();
    const server = await startServerProcess(
      await serverEnv({ PUBLIC_URL: `http://127.0.0.1:${port}` }),
      port,
    );
    try {
      const { devices, path } = await passOnDevices(server, 25);
      const since = Date.now();
      expect((await admin(server, 'PATCH', path, { fields: { points: 1 } })).status).toBe(200);
      await waitFor(() => acceptedTokens(since).length >= devices.length, 20_000, 'all pushes');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const pushes = mock.received.filter((push) => push.at >= since);
      expect(pushes.map((push) => push.pushToken).sort()).toEqual(
        devices.map((device) => device.pushToken).sort(),
      );
      for (const push of pushes) {
        expect(push).toMatchObject({ status: 200, topic: passTypeIdentifier, body: '{}' });
      }
      // Each device then finds the change with its tag and downloads the new version.
      const device = devices[0] as WalletDevice;
      expect(await device.sync(`http://127.0.0.1:${port}`, passTypeIdentifier)).toHaveLength(1);

      const gone = devices[1] as WalletDevice;
      mock.failTokens.set(gone.pushToken, { status: 410, reason: 'Unregistered', timestamp: Date.now() });
      expect((await admin(server, 'PATCH', path, { fields: { points: 2 } })).status).toBe(200);
      await waitFor(
        async () => (await admin(server, 'GET', path)).body.registeredDevices === devices.length - 1,
        20_000,
        'the 410 device to be removed',
      );
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('delivers every remaining push after the server is killed in the middle of a fan-out', async () => {
    const port = await freePort();
    const env = await serverEnv({
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      APNS_MAX_CONCURRENT_STREAMS: '5',
      PUSH_LEASE_SECONDS: '2',
    });
    const first = await startServerProcess(env, port);
    const { devices, path } = await passOnDevices(first, 120);
    mock.setLatencyMs(150);
    const since = Date.now();
    try {
      expect((await admin(first, 'PATCH', path, { fields: { points: 3 } })).status).toBe(200);
      await waitFor(() => acceptedTokens(since).length >= 10, 20_000, 'the fan-out to start');
      first.child.kill('SIGKILL');
      await first.exited;
      expect(new Set(acceptedTokens(since)).size).toBeLessThan(devices.length);
    } finally {
      mock.setLatencyMs(0);
    }
    const second = await startServerProcess(env, port);
    try {
      await waitFor(
        () => new Set(acceptedTokens(since)).size === devices.length,
        60_000,
        'every device to get its push after the restart',
      );
      const outbox = await admin(second, 'GET', '/admin/pushes');
      expect(outbox.status).toBe(200);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
