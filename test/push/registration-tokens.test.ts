import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApnsClient, createApnsClient } from '../../src/push/apns/client.js';
import { startPushWorker } from '../../src/push/worker.js';
import { generateProviderKey, type MockApns, startMockApns } from '../support/mock-apns.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { WalletDevice } from '../support/wallet-device.js';

/*
 * Where a pass's pushes go is decided by that pass's own registrations: Apple's register request carries the push
 * token with each pass (POST /v1/devices/{device}/registrations/{type}/{serial}), so only a registration of that
 * pass (with its authentication token) may change it. Real HTTP to the app, the real push worker and APNs client,
 * and the mock APNs over HTTP/2 + TLS.
 */
let server: TestServer;
let mock: MockApns;
let apns: ApnsClient;
const log = pino({ level: 'silent' });

beforeAll(async () => {
  server = await startTestServer();
  const key = generateProviderKey();
  mock = await startMockApns({ publicKeyPem: key.publicKeyPem, keyId: 'KEY1234567', teamId: 'TEAM123456' });
  apns = createApnsClient({
    origin: mock.origin,
    ca: mock.caPem,
    auth: { kind: 'token', keyPem: key.keyPem, keyId: 'KEY1234567', teamId: 'TEAM123456' },
    log,
  });
});

afterAll(async () => {
  await apns?.close();
  await mock?.close();
  await server?.close();
});

async function createPass() {
  const created = await server.admin('POST', '/admin/passes', { template: 'loyalty' });
  expect(created.status).toBe(201);
  const serialNumber = String(created.body.serialNumber);
  const bundle = Buffer.from(await (await fetch(String(created.body.downloadUrl))).arrayBuffer());
  return {
    serialNumber,
    bundle,
    path: `/admin/passes/${server.identity.passTypeIdentifier}/${serialNumber}`,
  };
}

/** Changes the pass, lets the push worker send the outbox, and returns the push tokens APNs accepted meanwhile. */
async function changeAndPush(path: string, points: number): Promise<string[]> {
  const since = mock.received.length;
  expect((await server.admin('PATCH', path, { fields: { points } })).status).toBe(200);
  const worker = startPushWorker({
    repositories: server.database.repositories,
    send: (pushToken, topic) => apns.send(pushToken, topic),
    clock: { now: () => new Date() },
    log,
    pollIntervalMs: 20,
  });
  try {
    worker.wake();
    await worker.drain();
  } finally {
    await worker.stop();
  }
  return mock.received
    .slice(since)
    .filter((push) => push.status === 200)
    .map((push) => push.pushToken);
}

describe('push tokens per registration', () => {
  it('a registration of another pass under the same device identifier does not redirect a pass’s pushes', async () => {
    const a = await createPass();
    const b = await createPass();
    const victim = new WalletDevice();
    // The attacker knows the victim's device library identifier and holds a pass of its own (B).
    const attacker = new WalletDevice({ deviceLibraryIdentifier: victim.deviceLibraryIdentifier });
    expect((await victim.add(a.bundle)).status).toBe(201);
    expect((await attacker.add(b.bundle)).status).toBe(201);

    expect(await changeAndPush(a.path, 1)).toEqual([victim.pushToken]);
    expect(await changeAndPush(b.path, 1)).toEqual([attacker.pushToken]);
  });

  it('a re-registration of the pass with a new push token moves its pushes to the new token', async () => {
    const a = await createPass();
    const device = new WalletDevice();
    expect((await device.add(a.bundle)).status).toBe(201);
    const old = device.pushToken;
    device.pushToken = `${'0'.repeat(63)}1`;
    expect(device.pushToken).not.toBe(old);
    expect((await device.register(a.serialNumber)).status).toBe(200);
    expect(await changeAndPush(a.path, 2)).toEqual([device.pushToken]);
  });

  it('APNs’s 410 for one token removes only the registrations made with it', async () => {
    const a = await createPass();
    const b = await createPass();
    const device = new WalletDevice();
    const other = new WalletDevice({ deviceLibraryIdentifier: device.deviceLibraryIdentifier });
    expect((await device.add(a.bundle)).status).toBe(201);
    expect((await other.add(b.bundle)).status).toBe(201);
    mock.failTokens.set(other.pushToken, { status: 410, reason: 'Unregistered', timestamp: Date.now() });

    expect(await changeAndPush(b.path, 3)).toEqual([]);
    expect((await server.admin('GET', b.path)).body.registeredDevices).toBe(0);
    expect((await server.admin('GET', a.path)).body.registeredDevices).toBe(1);
    // The device keeps its other pass: Wallet still lists it, and its pushes still go out.
    expect(await device.listUpdated(server.baseUrl, server.identity.passTypeIdentifier)).toEqual([
      a.serialNumber,
    ]);
    expect(await changeAndPush(a.path, 3)).toEqual([device.pushToken]);
  });
});
