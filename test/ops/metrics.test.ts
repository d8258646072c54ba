import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { createRepositories } from '../../src/db/repositories.js';
import { createMetrics, type Metrics, reasonLabel } from '../../src/ops/metrics.js';
import { type ApnsClient, createApnsClient } from '../../src/push/apns/client.js';
import { startPushWorker } from '../../src/push/worker.js';
import { openTestDatabase } from '../support/database.js';
import { generateProviderKey, type MockApns, startMockApns } from '../support/mock-apns.js';
import { adminToken, startTestServer, type TestServer } from '../support/server.js';
import { WalletDevice } from '../support/wallet-device.js';
import { sample, scrape } from './metrics-text.js';

const registrationRoute =
  '/v1/devices/:deviceLibraryIdentifier/registrations/:passTypeIdentifier/:serialNumber';

let database: Database;
let metrics: Metrics;
let server: TestServer;
let mock: MockApns;
let apns: ApnsClient;
const log = pino({ level: 'silent' });

beforeAll(async () => {
  database = await openTestDatabase();
  metrics = createMetrics({
    repositories: database.repositories,
    clock: { now: () => new Date() },
    log,
    passChanges: database.passChanges,
    identities: {
      list: () => [
        {
          signing: {
            passTypeIdentifier: 'pass.metrics.test',
            notAfter: new Date(Date.now() + 10.5 * 86_400_000),
          },
        },
      ],
    },
  });
  server = await startTestServer({ database, ops: { metrics } });
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

const metricsUrl = () => `${server.baseUrl}/metrics`;

async function createPassOnDevices(count: number) {
  const created = await server.admin('POST', '/admin/passes', { template: 'loyalty' });
  expect(created.status).toBe(201);
  const serialNumber = String(created.body.serialNumber);
  const bundle = Buffer.from(await (await fetch(String(created.body.downloadUrl))).arrayBuffer());
  const devices = Array.from({ length: count }, () => new WalletDevice());
  for (const device of devices) expect((await device.add(bundle)).status).toBe(201);
  return {
    serialNumber,
    devices,
    path: `/admin/passes/${server.identity.passTypeIdentifier}/${serialNumber}`,
  };
}

describe('GET /metrics', () => {
  it('serves Prometheus text with the default process metrics', async () => {
    const response = await fetch(metricsUrl());
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(sample(text, 'passkit_database_up')).toBe(1);
    expect(sample(text, 'passkit_pass_changes_listening')).toBe(1);
    expect(
      sample(text, 'passkit_signing_certificate_days_left', { pass_type_identifier: 'pass.metrics.test' }),
    ).toBe(10);
  });

  it('moves when a pass is created, downloaded, registered and changed', async () => {
    const before = await scrape(metricsUrl());
    const signings = () => sample(before, 'passkit_signing_duration_seconds_count') ?? 0;
    const hits = (text: string) => sample(text, 'passkit_bundle_cache_total', { result: 'hit' });
    const misses = (text: string) => sample(text, 'passkit_bundle_cache_total', { result: 'miss' });
    const passes = sample(before, 'passkit_passes') ?? Number.NaN;
    const registrations = sample(before, 'passkit_registrations') ?? Number.NaN;

    // Create (signs once), download through the link (stored bundle: a hit), and Wallet registers.
    const { serialNumber, devices, path } = await createPassOnDevices(1);
    const afterCreate = await scrape(metricsUrl());
    expect(sample(afterCreate, 'passkit_passes')).toBe(passes + 1);
    expect(sample(afterCreate, 'passkit_registrations')).toBe(registrations + 1);
    expect(sample(afterCreate, 'passkit_signing_duration_seconds_count')).toBe(signings() + 1);
    expect(sample(afterCreate, 'passkit_signing_duration_seconds_sum')).toBeGreaterThan(0);
    expect(hits(afterCreate)).toBe((hits(before) ?? 0) + 1);
    const created = { route: '/admin/passes', method: 'POST', status_code: '201' };
    expect(sample(afterCreate, 'passkit_http_requests_total', created)).toBe(
      (sample(before, 'passkit_http_requests_total', created) ?? 0) + 1,
    );
    expect(sample(afterCreate, 'passkit_http_request_duration_seconds_count', created)).toBe(
      (sample(before, 'passkit_http_request_duration_seconds_count', created) ?? 0) + 1,
    );
    const registered = { route: registrationRoute, method: 'POST', status_code: '201' };
    expect(sample(afterCreate, 'passkit_http_requests_total', registered)).toBeGreaterThanOrEqual(1);
    // Route patterns only: identifiers (a secret one among them) never become labels.
    const device = devices[0] as WalletDevice;
    expect(afterCreate).not.toContain(device.deviceLibraryIdentifier);
    expect(afterCreate).not.toContain(serialNumber);

    // A change signs the new version; Wallet's fetch of it is then a hit.
    expect((await server.admin('PATCH', path, { fields: { points: 5 } })).status).toBe(200);
    expect(await device.fetchLatest(serialNumber)).toBe(200);
    // With the stored bundle gone, the next fetch signs again: a miss.
    await database.prisma.$executeRaw`DELETE FROM pass_bundles`;
    expect((await fetch(`${server.baseUrl}${path}/pkpass`, { headers: adminHeaders() })).status).toBe(200);
    const afterChange = await scrape(metricsUrl());
    expect(sample(afterChange, 'passkit_signing_duration_seconds_count')).toBe(signings() + 3);
    expect(hits(afterChange)).toBe((hits(before) ?? 0) + 2);
    expect(misses(afterChange)).toBe((misses(before) ?? 0) + 1);
  });

  it('labels requests that match no route as unmatched, not by their URL', async () => {
    await fetch(`${server.baseUrl}/no/such/route/abc123`);
    const text = await scrape(metricsUrl());
    expect(
      sample(text, 'passkit_http_requests_total', {
        route: '(unmatched)',
        method: 'GET',
        status_code: '404',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(text).not.toContain('abc123');
  });

  it('counts pushes sent and failed by reason, and the outbox until the worker has sent', async () => {
    // Only this test's pushes: the earlier change's row would be sent too.
    await database.prisma.$executeRaw`DELETE FROM push_outbox`;
    const { devices, path } = await createPassOnDevices(3);
    const [accepted, gone, refused] = devices as [WalletDevice, WalletDevice, WalletDevice];
    mock.failTokens.set(gone.pushToken, { status: 410, reason: 'Unregistered' });
    mock.failTokens.set(refused.pushToken, { status: 400, reason: 'BadTopic' });
    const before = await scrape(metricsUrl());
    const failed = (text: string, reason: string, outcome: string) =>
      sample(text, 'passkit_pushes_failed_total', { reason, outcome }) ?? 0;

    // No worker runs yet: the change waits in the outbox.
    expect((await server.admin('PATCH', path, { fields: { points: 9 } })).status).toBe(200);
    const waiting = await scrape(metricsUrl());
    expect(sample(waiting, 'passkit_push_outbox_depth')).toBe(3);
    expect(sample(waiting, 'passkit_push_outbox_due')).toBe(3);
    expect(sample(waiting, 'passkit_push_outbox_oldest_due_age_seconds')).toBeGreaterThanOrEqual(0);

    const worker = startPushWorker({
      repositories: database.repositories,
      send: (pushToken, topic) => apns.send(pushToken, topic),
      clock: { now: () => new Date() },
      log,
      pollIntervalMs: 20,
      onOutcome: (outcome) => metrics.observePush(outcome),
    });
    try {
      worker.wake();
      await worker.drain();
    } finally {
      await worker.stop();
    }
    expect(mock.accepted().map((push) => push.pushToken)).toContain(accepted.pushToken);

    const after = await scrape(metricsUrl());
    expect(sample(after, 'passkit_pushes_sent_total')).toBe(
      (sample(before, 'passkit_pushes_sent_total') ?? 0) + 1,
    );
    expect(failed(after, 'Unregistered', 'unregistered')).toBe(
      failed(before, 'Unregistered', 'unregistered') + 1,
    );
    expect(failed(after, 'BadTopic', 'failed')).toBe(failed(before, 'BadTopic', 'failed') + 1);
    expect(sample(after, 'passkit_push_failures_recorded', { reason: 'BadTopic' })).toBe(1);
    expect(sample(after, 'passkit_push_outbox_depth')).toBe(0);
    expect(sample(after, 'passkit_push_outbox_oldest_due_age_seconds')).toBe(0);
    // APNs said the token is gone: its registration was removed.
    expect(sample(after, 'passkit_registrations')).toBe((sample(waiting, 'passkit_registrations') ?? 0) - 1);
  });
});

describe('a scrape while the database does not answer', () => {
  it('reports the database down and leaves its gauges out instead of showing stale numbers', async () => {
    const broken = new Proxy(database.prisma, {
      get(target, key, receiver) {
        if (key === '$queryRaw') return () => Promise.reject(new Error('connection refused'));
        return Reflect.get(target, key, receiver);
      },
    });
    const own = createMetrics({
      repositories: createRepositories({ ...database, prisma: broken }),
      clock: { now: () => new Date() },
      log,
    });
    const text = await own.scrape();
    expect(sample(text, 'passkit_database_up')).toBe(0);
    expect(sample(text, 'passkit_passes')).toBeUndefined();
    expect(sample(text, 'passkit_push_outbox_depth')).toBeUndefined();
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });
});

describe('reasonLabel', () => {
  it('keeps APNs reasons, drops the details of ours, and bounds anything else', () => {
    expect(reasonLabel('Unregistered')).toBe('Unregistered');
    expect(reasonLabel('HTTP 502')).toBe('HTTP 502');
    expect(reasonLabel('ConnectionError: read ECONNRESET 10.0.0.1:443')).toBe('ConnectionError');
    expect(reasonLabel('send error: socket hang up')).toBe('send error');
    expect(reasonLabel('{"weird":"json"}')).toBe('other');
    expect(reasonLabel('x'.repeat(100))).toBe('other');
  });
});

function adminHeaders() {
  return { authorization: `Bearer ${adminToken}` };
}
