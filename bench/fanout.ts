/**
 * End to end: one pass registered on N devices (20,000 by default), one PATCH through the admin API → time until
 * the mock APNs has acknowledged a push for every device. The server is built in this process exactly as
 * src/server.ts builds it (app + push worker + APNs client over HTTP/2 + TLS); the mock runs in this process too.
 * Database: BENCH_DATABASE_URL (PostgreSQL), or a fresh embedded PGlite.
 */

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pino from 'pino';
import { buildApp } from '../src/app.js';
import { systemClock } from '../src/clock.js';
import { type Database, embeddedDatabase, openDatabase } from '../src/db/database.js';
import { applyMigrations } from '../src/db/migrations.js';
import { loadSigningIdentity } from '../src/passes/signing-identity.js';
import { loadTemplates } from '../src/passes/templates.js';
import { startPushes } from '../src/push/pushes.js';
import { createFreshPostgresDatabase } from '../test/support/database.js';
import { generateProviderKey, startMockApns } from '../test/support/mock-apns.js';
import { createTestPki } from '../test/support/pki.js';

const DEVICES = Number(process.env.BENCH_FANOUT_DEVICES ?? 20_000);
const log = pino({ level: 'silent' });

async function benchDatabase(): Promise<{ database: Database; drop: () => Promise<void> }> {
  const baseUrl = process.env.BENCH_DATABASE_URL;
  if (!baseUrl) {
    const database = embeddedDatabase(await PGlite.create());
    await applyMigrations(database.adapterFactory);
    return { database, drop: async () => {} };
  }
  const fresh = await createFreshPostgresDatabase(baseUrl);
  return { database: await openDatabase({ databaseUrl: fresh.url, dataDir: '', log }), drop: fresh.drop };
}

export async function benchFanout(): Promise<void> {
  const key = generateProviderKey();
  const mock = await startMockApns({
    publicKeyPem: key.publicKeyPem,
    keyId: 'FANOUTKEY1',
    teamId: 'TESTTEAM01',
  });
  const dir = await mkdtemp(join(tmpdir(), 'pks-bench-fanout-'));
  await writeFile(join(dir, 'mock-ca.pem'), mock.caPem);
  const pki = await createTestPki();
  const identity = await loadSigningIdentity({
    certificatesDir: pki.certificatesDir,
    dataDir: dir,
    production: false,
    log,
  });
  const { templates } = await loadTemplates(join(import.meta.dirname, '..', 'models'));
  const { database, drop } = await benchDatabase();
  const apnsKeyFile = join(dir, 'apns.p8');
  await writeFile(apnsKeyFile, key.keyPem);
  const pushes = startPushes({
    config: {
      origin: mock.origin,
      auth: 'token',
      keyFile: apnsKeyFile,
      keyId: 'FANOUTKEY1',
      teamId: undefined,
      pushType: 'background',
      priority: undefined,
      maxConcurrentStreams: 1000,
      maxAttempts: 10,
      leaseMs: 60_000,
    },
    identity,
    prisma: database.prisma,
    clock: systemClock,
    log,
    ca: mock.caPem,
  });
  const app = await buildApp({
    prisma: database.prisma,
    templates,
    identity,
    clock: systemClock,
    webServiceURL: 'https://passes.bench.example',
    log,
    adminToken: 'bench-admin-token-0123456789',
    publicUrl: 'https://passes.bench.example',
    downloadLinkTtlSeconds: 3600,
    afterChange: () => pushes.worker.wake(),
  });
  try {
    const created = await app.inject({
      method: 'POST',
      url: '/admin/passes',
      headers: { authorization: 'Bearer bench-admin-token-0123456789' },
      payload: { template: 'event', serialNumber: 'fanout-1' },
    });
    if (created.statusCode !== 201) throw new Error(`create answered ${created.statusCode}`);
    // N devices registered for the pass, inserted in bulk (registration speed is not what this measures).
    await database.prisma.$executeRaw`
      INSERT INTO devices (device_library_identifier, push_token)
      SELECT 'bench-device-' || i, md5(i::text) || md5((i + 1)::text) FROM generate_series(1, ${DEVICES}) AS i`;
    await database.prisma.$executeRaw`
      INSERT INTO registrations (device_id, pass_id)
      SELECT d.id, p.id FROM devices d, passes p WHERE p.serial_number = 'fanout-1'`;

    const started = performance.now();
    const changed = await app.inject({
      method: 'PATCH',
      url: `/admin/passes/${identity.passTypeIdentifier}/fanout-1`,
      headers: { authorization: 'Bearer bench-admin-token-0123456789' },
      payload: { fields: { gate: 'B12' } },
    });
    if (changed.statusCode !== 200) throw new Error(`change answered ${changed.statusCode}: ${changed.body}`);
    const patched = performance.now() - started;
    const acknowledged = new Set<string>();
    let seen = 0;
    while (acknowledged.size < DEVICES) {
      for (; seen < mock.received.length; seen++) {
        const push = mock.received[seen];
        if (push?.status === 200) acknowledged.add(push.pushToken);
      }
      if (performance.now() - started > 120_000)
        throw new Error(`only ${acknowledged.size} acknowledged after 120 s`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const total = performance.now() - started;
    console.log(`\n## End to end fan-out (${database.kind} database)`);
    console.log(`| devices | PATCH answered | all pushes acknowledged | pushes/s |`);
    console.log(`| ---: | ---: | ---: | ---: |`);
    console.log(
      `| ${DEVICES} | ${patched.toFixed(0)} ms | ${(total / 1000).toFixed(2)} s | ${Math.round(DEVICES / (total / 1000))} |`,
    );
  } finally {
    await app.close();
    await pushes.close();
    await database.close();
    await drop();
    await mock.close();
  }
}
