import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/database.js';
import { migrationStatus } from '../../src/db/migrations.js';
import { type PushWorker, startPushWorker } from '../../src/push/worker.js';
import { createFreshPostgresDatabase, testDatabaseUrl } from '../support/database.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { WalletDevice } from '../support/wallet-device.js';

/*
 * PostgreSQL goes away and comes back while the server runs: /readyz says so, and the same process serves admin
 * and Wallet requests again afterwards, without a restart. A TCP proxy stands between the server and PostgreSQL.
 * The embedded database lives inside the process and cannot go away like this.
 */
describe.skipIf(!testDatabaseUrl)('readiness while PostgreSQL stops and starts again', () => {
  let proxy: TcpProxy;
  let database: Database;
  let worker: PushWorker;
  let server: TestServer;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await createFreshPostgresDatabase(testDatabaseUrl ?? '');
    drop = fresh.drop;
    const target = new URL(fresh.url);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const log = pino({ level: 'silent' });
    database = await openDatabase({ databaseUrl: proxy.proxiedUrl(fresh.url), dataDir: '', log });
    worker = startPushWorker({
      repositories: database.repositories,
      send: async () => ({ kind: 'delivered' }),
      clock: { now: () => new Date() },
      log,
      pollIntervalMs: 50,
    });
    server = await startTestServer({
      database,
      ops: { pushWorker: worker, checkMigrations: () => migrationStatus(database.adapterFactory) },
    });
  });

  afterAll(async () => {
    proxy?.restore();
    await worker?.stop();
    await server?.close();
    await proxy?.close();
    await drop?.();
  });

  async function readiness() {
    const response = await fetch(`${server.baseUrl}/readyz`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function passOnDevice() {
    const created = await server.admin('POST', '/admin/passes', { template: 'loyalty' });
    expect(created.status).toBe(201);
    const bundle = await fetch(String(created.body.downloadUrl)).then(async (r) =>
      Buffer.from(await r.arrayBuffer()),
    );
    const device = new WalletDevice();
    expect((await device.add(bundle)).status).toBe(201);
    return { serialNumber: String(created.body.serialNumber), device };
  }

  it('answers 503 naming the database while it is cut, and serves again once it is back', async () => {
    expect(await readiness()).toEqual({ status: 200, body: { status: 'ready' } });
    const before = await passOnDevice();

    proxy.cut('reset');
    await expect
      .poll(readiness, { timeout: 10_000, interval: 100 })
      .toEqual({ status: 503, body: { status: 'unavailable', failing: ['database'] } });
    // What needs no database still answers; templates (some stored in it) and passes do not.
    expect((await server.admin('GET', '/admin/identities')).status).toBe(200);
    expect((await server.admin('GET', '/admin/templates')).status).toBe(500);
    expect((await server.admin('POST', '/admin/passes', { template: 'loyalty' })).status).toBe(500);

    proxy.restore();
    await expect
      .poll(readiness, { timeout: 10_000, interval: 100 })
      .toEqual({ status: 200, body: { status: 'ready' } });
    // The same process, its connection pool and its push worker carry on.
    const path = `/admin/passes/${server.identity.passTypeIdentifier}/${before.serialNumber}`;
    expect((await server.admin('PATCH', path, { fields: { points: 7 } })).status).toBe(200);
    expect(await before.device.fetchLatest(before.serialNumber)).toBe(200);
    await passOnDevice();
    expect(worker.running).toBe(true);
  });

  it('answers 503 within its timeout when PostgreSQL stops answering, and ready again when it answers', async () => {
    proxy.cut('blackhole');
    const started = Date.now();
    expect(await readiness()).toEqual({
      status: 503,
      body: { status: 'unavailable', failing: ['database'] },
    });
    expect(Date.now() - started).toBeLessThan(5_000);

    proxy.restore();
    await expect
      .poll(readiness, { timeout: 10_000, interval: 100 })
      .toEqual({ status: 200, body: { status: 'ready' } });
    await passOnDevice();
  });
});
