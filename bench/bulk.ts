/**
 * End to end bulk change: N passes (100,000 by default; BENCH_BULK_PASSES), each registered on its own device, one
 * POST /admin/passes/bulk selecting all of them by template and field value (or by the list of their serials:
 * BENCH_BULK_SELECT=serials) → time until the job is done, every
 * pass is at version 2 with a signed bundle of version 2, and every push was acknowledged by the mock APNs (the
 * outbox is empty and no push was given up on: a row is deleted only once APNs answered 200). The server (app, bulk
 * runner, push worker, APNs client over HTTP/2 + TLS) is built in this process as src/server.ts builds it; the mock
 * APNs runs in this process too (record: false), so the RSS figures include it.
 * Database: BENCH_DATABASE_URL (PostgreSQL, a fresh database), or a fresh embedded PGlite. The runner's knobs:
 * BENCH_BULK_PAGE_SIZE (passes per page, the server's default unless set), BENCH_BULK_CONCURRENCY (passes of a page
 * signed at once).
 */

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildApp } from '../src/app.js';
import { systemClock } from '../src/clock.js';
import { getBulkJob, startBulkRunner } from '../src/passes/bulk.js';
import { loadTemplates } from '../src/passes/templates.js';
import { startPushes } from '../src/push/pushes.js';
import { createSigner } from '../src/signing/signer.js';
import { testTemplateCatalog } from '../test/support/catalog.js';
import { loadTestIdentities } from '../test/support/identities.js';
import { generateProviderKey, startMockApns } from '../test/support/mock-apns.js';
import { createTestPki, identityFromPki } from '../test/support/pki.js';
import { benchDatabase } from './database.js';
import { perSecond, printTargets, type TargetLine } from './targets.js';

const PASSES = Number(process.env.BENCH_BULK_PASSES ?? 100_000);
/** Passes of a page signed at once (the runner's concurrency; the server's default is 16 too). */
const CONCURRENCY = Number(process.env.BENCH_BULK_CONCURRENCY ?? 16);
/** Passes per page (the runner's pageSize); unset, the server's default. */
const PAGE_SIZE = process.env.BENCH_BULK_PAGE_SIZE ? Number(process.env.BENCH_BULK_PAGE_SIZE) : undefined;
const TIMEOUT_MS = Number(process.env.BENCH_BULK_TIMEOUT_MS ?? 30 * 60_000);
/** BENCH_BULK_SELECT: `template` (the default), all passes of the template with a field value; `serials`, their list. */
const BY_SERIALS = (process.env.BENCH_BULK_SELECT ?? 'template') === 'serials';
const log = pino({ level: 'silent' });
const token = 'bench-admin-token-0123456789';
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);

export async function benchBulk(): Promise<TargetLine[]> {
  const key = generateProviderKey();
  const mock = await startMockApns({
    publicKeyPem: key.publicKeyPem,
    keyId: 'BULKKEY001',
    teamId: 'TESTTEAM01',
    record: false,
  });
  const dir = await mkdtemp(join(tmpdir(), 'pks-bench-bulk-'));
  const pki = await createTestPki();
  const identity = identityFromPki(pki);
  const { templates } = await loadTemplates(join(import.meta.dirname, '..', 'models'));
  const { database, drop } = await benchDatabase();
  const identities = await loadTestIdentities(identity, database.repositories);
  const prisma = database.prisma;
  const apnsKeyFile = join(dir, 'apns.p8');
  await writeFile(apnsKeyFile, key.keyPem);
  const pushes = startPushes({
    config: {
      origin: mock.origin,
      auth: 'token',
      keyFile: apnsKeyFile,
      keyId: 'BULKKEY001',
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
  // Time spent waiting for signatures (summed over concurrent signings): how much of the run is signing.
  const signing = { count: 0, seconds: 0 };
  const signer = createSigner();
  const passesDeps = {
    repositories: database.repositories,
    templates: testTemplateCatalog(templates, database.repositories, identities),
    identities,
    signer,
    clock: systemClock,
    webServiceURL: 'https://passes.bench.example',
    afterChange: () => pushes.worker.wake(),
    observeSigning: (seconds: number) => {
      signing.count++;
      signing.seconds += seconds;
    },
  };
  const app = await buildApp({
    ...passesDeps,
    database,
    log,
    adminToken: token,
    publicUrl: 'https://passes.bench.example',
    downloadLinkTtlSeconds: 3600,
    // As src/server.ts wires it: the job starts when it is posted. `bulk` exists before the first request.
    wakeBulkRunner: () => bulk.wake(),
  });
  const bulk = startBulkRunner({
    deps: passesDeps,
    log,
    concurrency: CONCURRENCY,
    ...(PAGE_SIZE ? { pageSize: PAGE_SIZE } : {}),
  });
  try {
    const created = await app.inject({
      method: 'POST',
      url: '/admin/passes',
      headers: { authorization: `Bearer ${token}` },
      payload: { template: 'event', serialNumber: 'bulk-1', fields: { event: 'Bench Gig', seat: '1' } },
    });
    if (created.statusCode !== 201) throw new Error(`create answered ${created.statusCode}`);
    // The other N-1 passes copy the first one's content (creation speed is not what this measures), each with
    // its own serial and authentication token, and one device per pass.
    await prisma.$executeRaw`
      INSERT INTO passes (pass_type_identifier, serial_number, authentication_token, template, fields, overrides,
        change_messages, last_modified)
      SELECT p.pass_type_identifier, 'bulk-' || i, md5(i::text) || md5('token' || i), p.template, p.fields,
        p.overrides, p.change_messages, p.last_modified
      FROM passes p, generate_series(2, ${PASSES}) AS i WHERE p.serial_number = 'bulk-1'`;
    // devices.push_token is deprecated (read by nothing): the push tokens are the registrations'.
    await prisma.$executeRaw`
      INSERT INTO devices (device_library_identifier, push_token) SELECT 'bench-device-' || p.id, '' FROM passes p`;
    await prisma.$executeRaw`
      INSERT INTO registrations (device_id, pass_id, push_token)
      SELECT d.id, p.id, md5(p.id::text) || md5((p.id + 1)::text)
      FROM passes p JOIN devices d ON d.device_library_identifier = 'bench-device-' || p.id`;
    await prisma.$executeRaw`ANALYZE`;
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;

    let peakRss = rssBefore;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 100);
    const started = performance.now();
    const posted = await app.inject({
      method: 'POST',
      url: '/admin/passes/bulk',
      headers: { authorization: `Bearer ${token}` },
      payload: {
        select: BY_SERIALS
          ? { serialNumbers: Array.from({ length: PASSES }, (_, i) => `bulk-${i + 1}`) }
          : { template: 'event', fields: { event: 'Bench Gig' } },
        change: { fields: { gate: 'B12' }, changeMessages: { gate: 'Your gate is now %@' } },
      },
    });
    if (posted.statusCode !== 202) throw new Error(`bulk answered ${posted.statusCode}: ${posted.body}`);
    const jobId = (posted.json() as { jobId: string }).jobId;
    const milestones = new Map<number, { seconds: number; rss: number }>();
    let jobDoneAt: number | undefined;
    let finishedAt: number | undefined;
    while (finishedAt === undefined) {
      const job = await getBulkJob(database, jobId);
      const elapsed = performance.now() - started;
      for (const percent of [10, 50, 100]) {
        if (!milestones.has(percent) && job.done >= (PASSES * percent) / 100) {
          const rss = process.memoryUsage().rss;
          milestones.set(percent, { seconds: elapsed / 1000, rss });
          peakRss = Math.max(peakRss, rss);
        }
      }
      if (job.status === 'failed') throw new Error(`bulk job failed: ${JSON.stringify(job.errors)}`);
      if (job.status === 'done') {
        jobDoneAt ??= elapsed;
        const [state] = await prisma.$queryRaw<Array<{ signed: number; outbox: number; failures: number }>>`
          SELECT
            (SELECT count(*)::int FROM passes p JOIN pass_bundles b ON b.pass_id = p.id
              WHERE p.version = 2 AND b.version = 2) AS signed,
            (SELECT count(*)::int FROM push_outbox) AS outbox,
            (SELECT count(*)::int FROM push_failures) AS failures`;
        if (state && state.failures > 0) throw new Error(`${state.failures} pushes given up on`);
        if (state?.signed === PASSES && state.outbox === 0) finishedAt = elapsed;
        else if (job.done + job.failed === PASSES && job.failed > 0)
          throw new Error(`${job.failed} passes failed: ${JSON.stringify(job.errors)}`);
      }
      if (elapsed > TIMEOUT_MS)
        throw new Error(`not finished after ${TIMEOUT_MS / 1000} s: ${JSON.stringify(job)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    clearInterval(sampler);
    const at = (percent: number) => {
      const milestone = milestones.get(percent);
      return milestone ? `${mb(milestone.rss)} MB (${milestone.seconds.toFixed(0)} s)` : 'n/a';
    };
    const seconds = finishedAt / 1000;
    console.log(
      `\n## Bulk change (${database.kind} database, selected by ${BY_SERIALS ? 'a list of serials' : 'template and field value'})`,
    );
    console.log(
      '| passes | job done | all signed + all pushes acknowledged | passes/s | RSS before | RSS at 10% | RSS at 50% | RSS at 100% | peak RSS |',
    );
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    console.log(
      `| ${PASSES} | ${((jobDoneAt ?? finishedAt) / 1000).toFixed(1)} s | ${seconds.toFixed(1)} s | ${Math.round(PASSES / seconds)} | ${mb(rssBefore)} MB | ${at(10)} | ${at(50)} | ${at(100)} | ${mb(peakRss)} MB |`,
    );
    console.log(
      `(signing: ${signing.count} bundles, ${((signing.seconds / signing.count) * 1000).toFixed(1)} ms per bundle waited for, with ${CONCURRENCY} signed at once, pages of ${PAGE_SIZE ?? 'the default size'})`,
    );
    // Flat: the peak is not far above what the job held once it was going (at 10%).
    const early = milestones.get(10)?.rss ?? peakRss;
    return [
      {
        figure: `Bulk change: ${PASSES.toLocaleString('en-US')} passes by ${BY_SERIALS ? 'serial list' : 'template'}, all signed and pushes acknowledged (${database.kind})`,
        ours: `${seconds.toFixed(1)} s (${perSecond(PASSES / seconds)}), peak RSS ${mb(peakRss)} MB (${mb(early)} MB at 10%)`,
        baseline: `RSS before the job: ${mb(rssBefore)} MB`,
        goal: 'done, at 100,000 passes; memory flat (peak ≤ 1.5× RSS at 10%)',
        met: PASSES >= 100_000 && peakRss <= 1.5 * early,
      },
    ];
  } finally {
    await bulk.stop();
    await app.close();
    await signer.close();
    await pushes.close();
    await database.close();
    identities.close();
    await drop();
    await mock.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) printTargets(await benchBulk());
