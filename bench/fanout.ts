/**
 * End to end: one pass registered on N devices (BENCH_FANOUT_DEVICES, 100,000 by default), one PATCH through the
 * admin API → time until the mock APNs has acknowledged a push for every device. The server is built in this
 * process exactly as src/server.ts builds it (app + push worker + APNs client over HTTP/2 + TLS); the mock APNs
 * runs in a child process (bench/mock-process.ts), as Apple's servers are not on the server's CPU either.
 * BENCH_FANOUT_RUNS runs (3 by default), each on a fresh database; the median is reported.
 * Database: BENCH_DATABASE_URL (PostgreSQL), or a fresh embedded PGlite.
 */

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildApp } from '../src/app.js';
import { systemClock } from '../src/clock.js';
import { loadTemplates, type Template } from '../src/passes/templates.js';
import { startPushes } from '../src/push/pushes.js';
import type { SigningIdentity } from '../src/signing/identity.js';
import { createSigner } from '../src/signing/signer.js';
import { testTemplateCatalog } from '../test/support/catalog.js';
import { loadTestIdentities } from '../test/support/identities.js';
import { generateProviderKey } from '../test/support/mock-apns.js';
import { createTestPki, identityFromPki } from '../test/support/pki.js';
import { benchDatabase } from './database.js';
import { MockApnsProcess } from './mock-process.js';
import { perSecond, type TargetLine } from './targets.js';

const DEVICES = Number(process.env.BENCH_FANOUT_DEVICES ?? 100_000);
const RUNS = Number(process.env.BENCH_FANOUT_RUNS ?? 3);
const KEY_ID = 'FANOUTKEY1';
const TEAM_ID = 'TESTTEAM01';
const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const log = pino({ level: 'silent' });

interface Setup {
  mock: MockApnsProcess;
  identity: SigningIdentity;
  templates: Map<string, Template>;
  apnsKeyFile: string;
}

interface RunResult {
  kind: string;
  patchMs: number;
  totalMs: number;
  /** 200s beyond one per device (a push sent twice). */
  extra: number;
}

async function runOnce(setup: Setup): Promise<RunResult> {
  const { mock, identity, templates } = setup;
  const { database, drop } = await benchDatabase();
  const identities = await loadTestIdentities(identity, database.repositories);
  const pushes = startPushes({
    config: {
      origin: mock.origin,
      auth: 'token',
      keyFile: setup.apnsKeyFile,
      keyId: KEY_ID,
      teamId: undefined,
      pushType: 'background',
      priority: undefined,
      maxConcurrentStreams: 1000,
      maxAttempts: 10,
      leaseMs: 60_000,
    },
    identities,
    repositories: database.repositories,
    clock: systemClock,
    log,
    ca: mock.caPem,
  });
  const signer = createSigner();
  const app = await buildApp({
    database,
    repositories: database.repositories,
    templates: testTemplateCatalog(templates, database.repositories, identities),
    identities,
    signer,
    clock: systemClock,
    webServiceURL: 'https://passes.bench.example',
    log,
    adminToken: ADMIN_TOKEN,
    publicUrl: 'https://passes.bench.example',
    downloadLinkTtlSeconds: 3600,
    afterChange: () => pushes.worker.wake(),
  });
  try {
    const created = await app.inject({
      method: 'POST',
      url: '/admin/passes',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { template: 'event', serialNumber: 'fanout-1' },
    });
    if (created.statusCode !== 201) throw new Error(`create answered ${created.statusCode}`);
    // N devices registered for the pass, inserted in bulk (registration speed is not what this measures).
    // devices.push_token is deprecated (read by nothing): the push tokens are the registrations'.
    await database.prisma.$executeRaw`
      INSERT INTO devices (device_library_identifier, push_token)
      SELECT 'bench-device-' || i, '' FROM generate_series(1, ${DEVICES}) AS i`;
    await database.prisma.$executeRaw`
      INSERT INTO registrations (device_id, pass_id, push_token)
      SELECT d.id, p.id, md5(d.id::text) || md5((d.id + 1)::text)
      FROM devices d, passes p WHERE p.serial_number = 'fanout-1'`;
    await database.prisma.$executeRaw`ANALYZE`;
    await mock.reset();

    const started = performance.now();
    const changed = await app.inject({
      method: 'PATCH',
      url: `/admin/passes/${identity.passTypeIdentifier}/fanout-1`,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { fields: { gate: 'B12' } },
    });
    if (changed.statusCode !== 200) throw new Error(`change answered ${changed.statusCode}: ${changed.body}`);
    const patchMs = performance.now() - started;
    const stats = await mock.waitForAcked(DEVICES, 120_000);
    const totalMs = performance.now() - started;
    return { kind: database.kind, patchMs, totalMs, extra: stats.ok - stats.acked };
  } finally {
    await app.close();
    await signer.close();
    await pushes.close();
    await database.close();
    identities.close();
    await drop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

export async function benchFanout(): Promise<TargetLine[]> {
  const key = generateProviderKey();
  const mock = await MockApnsProcess.start({
    publicKeyPem: key.publicKeyPem,
    keyId: KEY_ID,
    teamId: TEAM_ID,
  });
  try {
    const dir = await mkdtemp(join(tmpdir(), 'pks-bench-fanout-'));
    const pki = await createTestPki();
    const identity = identityFromPki(pki);
    const { templates } = await loadTemplates(join(import.meta.dirname, '..', 'models'));
    const apnsKeyFile = join(dir, 'apns.p8');
    await writeFile(apnsKeyFile, key.keyPem);
    const results: RunResult[] = [];
    for (let run = 0; run < RUNS; run++) {
      results.push(await runOnce({ mock, identity, templates, apnsKeyFile }));
    }
    const totalMs = median(results.map((result) => result.totalMs));
    console.log(`\n## End to end fan-out (${results[0]?.kind} database, median of ${RUNS})`);
    console.log(
      '| devices | PATCH answered | all pushes acknowledged | pushes/s | runs (s) | pushes sent twice |',
    );
    console.log('| ---: | ---: | ---: | ---: | --- | ---: |');
    console.log(
      `| ${DEVICES} | ${median(results.map((r) => r.patchMs)).toFixed(0)} ms | ${(totalMs / 1000).toFixed(2)} s | ${Math.round(DEVICES / (totalMs / 1000))} | ${results.map((r) => (r.totalMs / 1000).toFixed(2)).join(', ')} | ${results.map((r) => r.extra).join(', ')} |`,
    );
    const sentTwice = results.reduce((sum, result) => sum + result.extra, 0);
    return [
      {
        figure: `Fan-out: one pass on ${DEVICES.toLocaleString('en-US')} devices, one process (${results[0]?.kind})`,
        ours: `${(totalMs / 1000).toFixed(2)} s to the last acknowledgement (${perSecond(DEVICES / (totalMs / 1000))}), ${sentTwice} sent twice`,
        baseline: '',
        goal: 'all acknowledged in < 10 s (at 100,000 devices)',
        met: DEVICES >= 100_000 && totalMs < 10_000 && sentTwice === 0,
      },
    ];
  } finally {
    await mock.stop();
  }
}
