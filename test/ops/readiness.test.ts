import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database, PrismaClient } from '../../src/db/database.js';
import { createHealthRepository } from '../../src/db/health.js';
import { type MigrationStatus, migrationStatus } from '../../src/db/migrations.js';
import { createReadiness, type ReadinessOptions } from '../../src/ops/readiness.js';
import { openTestDatabase } from '../support/database.js';
import { startTestServer, type TestServer } from '../support/server.js';

const log = pino({ level: 'silent' });
const clean: MigrationStatus = { pending: [], unknown: [], failed: [], edited: [] };
let database: Database;
let server: TestServer;

beforeAll(async () => {
  database = await openTestDatabase();
  server = await startTestServer({
    database,
    ops: { pushWorker: { running: true }, checkMigrations: () => migrationStatus(database.adapterFactory) },
  });
});

afterAll(async () => {
  await server?.close();
});

/** The database handle with every raw query failing, as while PostgreSQL is down. */
function unreachable(prisma: PrismaClient): PrismaClient {
  return new Proxy(prisma, {
    get(target, key, receiver) {
      if (key === '$queryRaw') return () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
      return Reflect.get(target, key, receiver);
    },
  });
}

function readiness(options: Partial<ReadinessOptions> = {}) {
  return createReadiness({
    health: database.repositories.health,
    identity: server.identity,
    clock: { now: () => new Date() },
    log,
    checkMigrations: async () => clean,
    pushWorker: { running: true },
    ...options,
  });
}

describe('GET /healthz and GET /readyz', () => {
  it('/healthz answers while the process is up; /readyz is ready with every part in place', async () => {
    const health = await fetch(`${server.baseUrl}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    // The real migration check (Prisma's schema engine) against the test database.
    const ready = await fetch(`${server.baseUrl}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([200, { status: 'ready' }]);
  });

  it('/readyz is 503 naming what was not given to the app: no unchecked part counts as ready', async () => {
    const bare = await startTestServer();
    try {
      const response = await fetch(`${bare.baseUrl}/readyz`);
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ status: 'unavailable', failing: ['migrations', 'pushWorker'] });
    } finally {
      await bare.close();
    }
  });
});

describe('readiness parts', () => {
  it('is ready when the database answers, migrations are applied, the identity is valid and the worker runs', async () => {
    expect(await readiness().check()).toEqual({ ready: true, failing: [] });
  });

  it('names the push worker once it stopped', async () => {
    const worker = { running: true };
    const check = readiness({ pushWorker: worker });
    expect((await check.check()).ready).toBe(true);
    worker.running = false;
    expect(await check.check()).toEqual({ ready: false, failing: ['pushWorker'] });
  });

  it('names a missing signing identity, and stays ready once the certificate has expired', async () => {
    expect((await readiness({ identity: undefined }).check()).failing).toEqual(['signingIdentity']);
    // Its passes are still served from their last signed bundles: the instance is worth keeping in service.
    const later = new Date(server.identity.notAfter.getTime() + 1000);
    expect(await readiness({ clock: { now: () => later } }).check()).toEqual({ ready: true, failing: [] });
  });

  it('names the migrations while some are pending or failed, and checks again after the recheck delay', async () => {
    let status: MigrationStatus = { ...clean, pending: ['20990101000000_next'] };
    let calls = 0;
    const check = readiness({
      checkMigrations: async () => {
        calls += 1;
        return status;
      },
      migrationRecheckMs: 50,
    });
    expect(await check.check()).toEqual({ ready: false, failing: ['migrations'] });
    // Within the recheck delay the costly engine is not run again.
    expect(await check.check()).toEqual({ ready: false, failing: ['migrations'] });
    expect(calls).toBe(1);
    status = { ...clean, failed: ['20240101000000_init'] };
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect((await check.check()).failing).toEqual(['migrations']);
    expect(calls).toBe(2);
    status = clean;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await check.check()).toEqual({ ready: true, failing: [] });
    expect(calls).toBe(3);
  });

  it('runs the migration check until it first succeeds, then keeps that answer', async () => {
    let calls = 0;
    const check = readiness({
      checkMigrations: async () => {
        calls += 1;
        return clean;
      },
    });
    await Promise.all([check.check(), check.check(), check.check()]);
    await check.check();
    expect(calls).toBe(1);
  });

  it('names the database while it does not answer, and keeps the confirmed migrations', async () => {
    let prisma = database.prisma;
    const parts = createReadiness({
      health: createHealthRepository({
        prisma: new Proxy(database.prisma, { get: (_, key) => Reflect.get(prisma, key, prisma) }),
      }),
      identity: server.identity,
      clock: { now: () => new Date() },
      log,
      checkMigrations: async () => clean,
      pushWorker: { running: true },
    });
    expect((await parts.check()).ready).toBe(true);
    prisma = unreachable(database.prisma);
    expect(await parts.check()).toEqual({ ready: false, failing: ['database'] });
    prisma = database.prisma;
    expect(await parts.check()).toEqual({ ready: true, failing: [] });
  });

  it('cannot confirm the migrations before the database first answers', async () => {
    const check = readiness({ health: createHealthRepository({ prisma: unreachable(database.prisma) }) });
    expect(await check.check()).toEqual({ ready: false, failing: ['database', 'migrations'] });
  });

  it('gives up on a database that hangs after its timeout', async () => {
    const hanging = new Proxy(database.prisma, {
      get(target, key, receiver) {
        if (key === '$queryRaw') return () => new Promise(() => {});
        return Reflect.get(target, key, receiver);
      },
    });
    const started = Date.now();
    const report = await readiness({
      health: createHealthRepository({ prisma: hanging }),
      databaseTimeoutMs: 100,
    }).check();
    expect(report.failing).toContain('database');
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
