/*
 * Bulk jobs page by page (src/passes/bulk-page.ts): what one page's transaction writes, what a failing pass, a
 * failing page, a stop and a concurrent PATCH leave behind, and the admin route waking the runner. On the test
 * database (PGlite, or PostgreSQL with TEST_DATABASE_URL); the concurrent PATCH needs a second session, so
 * PostgreSQL only. Each test starts its own runners and stops them, so no runner of another test takes its job.
 */
import { unzipSync } from 'fflate';
import pg from 'pg';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/app.js';
import { type BulkRunner, type BulkRunnerOptions, startBulkRunner } from '../../../src/passes/bulk.js';
import { openTestDatabase, testDatabaseKind } from '../../support/database.js';
import { verifyPkpass } from '../../support/pkpass-verifier.js';
import { startTestServer, type TestServer } from '../../support/server.js';
import { createPasses, passesDeps, registerDevice } from './bulk-fixtures.js';

let database: Awaited<ReturnType<typeof openTestDatabase>>;
let server: TestServer;
let runners: BulkRunner[] = [];
const silent = pino({ level: 'silent' });

beforeAll(async () => {
  database = await openTestDatabase();
  server = await startTestServer({ database });
});
afterEach(async () => {
  await Promise.all(runners.map((runner) => runner.stop()));
  runners = [];
});
afterAll(async () => {
  await server?.close();
});

function startRunner(options: Partial<BulkRunnerOptions> = {}): BulkRunner {
  const runner = startBulkRunner({
    deps: passesDeps(server),
    log: silent,
    pageSize: 4,
    concurrency: 3,
    pollIntervalMs: 20,
    ...options,
  });
  runners.push(runner);
  return runner;
}

const passType = () => server.identity.passTypeIdentifier;

/**
 * Runs `run` with a trigger before each insert into pass_bundles (a page's bundles, written in its transaction)
 * whose PL/pgSQL `body` sees NEW: to fail a page, or act in its transaction, at a chosen pass. Dropped after.
 */
async function withBundleInsertTrigger<T>(name: string, body: string, run: () => Promise<T>): Promise<T> {
  const prisma = server.database.prisma;
  await prisma.$executeRawUnsafe(
    `CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ${body} RETURN NEW; END $$`,
  );
  await prisma.$executeRawUnsafe(
    `CREATE TRIGGER ${name} BEFORE INSERT ON pass_bundles FOR EACH ROW EXECUTE FUNCTION ${name}()`,
  );
  try {
    return await run();
  } finally {
    await prisma.$executeRawUnsafe(`DROP TRIGGER ${name} ON pass_bundles`);
    await prisma.$executeRawUnsafe(`DROP FUNCTION ${name}()`);
  }
}

async function postJob(body: unknown): Promise<string> {
  const posted = await server.admin('POST', '/admin/passes/bulk', body);
  expect(posted.status).toBe(202);
  return String(posted.body.jobId);
}

async function jobRow(jobId: string) {
  return server.database.prisma.bulkJob.findUniqueOrThrow({ where: { id: jobId } });
}

async function waitForJob(jobId: string, statuses = ['done', 'failed']) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const job = await jobRow(jobId);
    if (statuses.includes(job.status)) return job;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`bulk job ${jobId} not ${statuses.join(' or ')} within 20 s`);
}

/** Each pass by serial: id, version, Last-Modified, fields, and the stored bundle's version and bytes. */
async function passStates(serials: string[]) {
  const passes = await server.database.prisma.pass.findMany({
    where: { serialNumber: { in: serials } },
    include: { bundle: true },
    orderBy: { id: 'asc' },
  });
  return new Map(
    passes.map((pass) => [
      pass.serialNumber,
      {
        id: pass.id,
        version: pass.version,
        lastModified: pass.lastModified,
        fields: pass.fields,
        bundleVersion: pass.bundle?.version,
        bundle: pass.bundle ? Buffer.from(pass.bundle.bytes) : undefined,
      },
    ]),
  );
}

/** The pass.json's fields of a bundle, by key: { value, changeMessage }. */
function bundleFields(bundle: Buffer | undefined): Map<string, { value: unknown; changeMessage?: unknown }> {
  const passJsonEntry = unzipSync(bundle ?? Buffer.alloc(0))['pass.json'];
  const passJson = JSON.parse(Buffer.from(passJsonEntry ?? []).toString('utf8')) as Record<string, unknown>;
  const fields = new Map<string, { value: unknown; changeMessage?: unknown }>();
  for (const style of ['boardingPass', 'coupon', 'eventTicket', 'generic', 'storeCard']) {
    const groups = (passJson[style] ?? {}) as Record<string, unknown>;
    for (const group of Object.values(groups)) {
      if (!Array.isArray(group)) continue;
      for (const field of group as Array<Record<string, unknown>>)
        fields.set(String(field.key), { value: field.value, changeMessage: field.changeMessage });
    }
  }
  return fields;
}

async function outboxCountsByToken(): Promise<Record<string, number>> {
  const rows = await server.database.prisma.pushOutbox.groupBy({ by: ['pushToken'], _count: true });
  return Object.fromEntries(rows.map((row) => [row.pushToken, row._count]));
}

describe('bulk job pages', () => {
  it('writes each page whole: every pass one version further, its bundle of that version, one outbox row per push token', async () => {
    const serials = await createPasses(server, 'loyalty', 'pages', 10, { points: 1, member: 'Ada' });
    // Passes at different versions: the bulk change makes each exactly one version more, not "version 2".
    for (const [serial, times] of [
      ['pages-2', 2],
      ['pages-5', 1],
    ] as const) {
      for (let i = 0; i < times; i++) {
        const patched = await server.admin('PATCH', `/admin/passes/${passType()}/${serial}`, {
          fields: { member: `Patched ${i}` },
        });
        expect(patched.status).toBe(200);
      }
    }
    // Two devices on one pass (tokens A and B); one push token on two passes of the same page (C: pages-1 and
    // pages-3); one on passes of different pages (A again, on pages-8).
    await registerDevice(server, 'pages-0', 'token-pages-A');
    await registerDevice(server, 'pages-0', 'token-pages-B');
    await registerDevice(server, 'pages-1', 'token-pages-C');
    await registerDevice(server, 'pages-3', 'token-pages-C');
    await registerDevice(server, 'pages-8', 'token-pages-A');
    await registerDevice(server, 'pages-9', 'token-pages-D');
    await server.database.prisma.pushOutbox.deleteMany();
    const before = await passStates(serials);

    startRunner({ pageSize: 4 });
    const jobId = await postJob({
      select: { serialNumbers: serials },
      change: { fields: { points: 42 }, changeMessages: { points: 'Now %@ points' } },
    });
    const job = await waitForJob(jobId);
    expect(job).toMatchObject({ status: 'done', matched: 10, done: 10, failed: 0 });

    const after = await passStates(serials);
    for (const serial of serials) {
      const was = before.get(serial);
      const now = after.get(serial);
      expect(now?.version, serial).toBe((was?.version ?? 0) + 1);
      expect(now?.bundleVersion, serial).toBe(now?.version);
      expect(now?.lastModified.getTime(), serial).toBeGreaterThan(was?.lastModified.getTime() ?? 0);
      // The stored bundle is the new version's: the change and what the pass had before, both in its pass.json.
      const fields = bundleFields(now?.bundle);
      expect(fields.get('points'), serial).toEqual({ value: 42, changeMessage: 'Now %@ points' });
      expect(fields.get('member')?.value, serial).toBe((was?.fields as Record<string, unknown>).member);
    }
    expect(after.get('pages-2')?.version).toBe(4);
    // What Wallet checks: manifest hashes, the signature, the pass.json's rules.
    await verifyPkpass(after.get('pages-9')?.bundle ?? Buffer.alloc(0), server.pki.wwdrPem);
    // One row per push token, however many of its passes changed (pages-0 and pages-8 share A across pages: the
    // row that waits for A when the second page commits is the one the first page wrote).
    expect(await outboxCountsByToken()).toEqual({
      'token-pages-A': 1,
      'token-pages-B': 1,
      'token-pages-C': 1,
      'token-pages-D': 1,
    });
    // The cursor is the last page's last id.
    expect(job.cursor).toBe(after.get('pages-9')?.id);
  });

  it('pages a list of serials by id: a repeat changed once, a page of serials that name no pass passed over', async () => {
    const serials = await createPasses(server, 'loyalty', 'walk', 6, { points: 1 });
    const listed = ['walk-3', 'walk-0', 'nope-1', 'walk-0', 'nope-2', 'walk-5', 'walk-1', 'walk-2', 'walk-4'];
    startRunner({ pageSize: 2 });
    const jobId = await postJob({ select: { serialNumbers: listed }, change: { fields: { points: 5 } } });
    const job = await waitForJob(jobId);
    const states = await passStates(serials);
    expect(job).toMatchObject({
      status: 'done',
      matched: 6,
      done: 6,
      failed: 2,
      cursor: states.get('walk-5')?.id,
    });
    for (const serial of serials)
      expect(states.get(serial), serial).toMatchObject({ version: 2, fields: { points: 5 } });
  });

  it('resumes a list of serials after its cursor, without changing a pass twice', async () => {
    const serials = await createPasses(server, 'loyalty', 'again', 5, { points: 1 });
    const before = await passStates(serials);
    const jobId = '22222222-2222-4222-8222-222222222222';
    // The state a runner that died leaves: its lease run out, the cursor after the first page (again-0 and again-1).
    await server.database.prisma.bulkJob.create({
      data: {
        id: jobId,
        selection: { serialNumbers: [...serials].reverse() },
        change: { fields: { points: 7 } },
        status: 'running',
        cursor: before.get('again-1')?.id ?? 0n,
        matched: 5,
        done: 2,
        startedAt: new Date(Date.now() - 120_000),
        leaseUntil: new Date(Date.now() - 1_000),
      },
    });
    startRunner({ pageSize: 2 });
    expect(await waitForJob(jobId)).toMatchObject({ status: 'done', matched: 5, done: 5 });
    const states = await passStates(serials);
    expect(serials.map((serial) => states.get(serial)?.version)).toEqual([1, 1, 2, 2, 2]);
  });

  it('counts a pass whose template lacks a field key as failed, and writes the rest of its page', async () => {
    const loyalty = await createPasses(server, 'loyalty', 'lacks-loyalty', 4, { points: 3 });
    const [event] = await createPasses(server, 'event', 'lacks-event', 1, { event: 'Gig' });
    const serials = [loyalty[0], loyalty[1], event, loyalty[2], loyalty[3]].map(String);
    startRunner({ pageSize: 10 });
    const jobId = await postJob({ select: { serialNumbers: serials }, change: { fields: { points: 4 } } });
    const job = await waitForJob(jobId);
    expect(job).toMatchObject({ status: 'done', matched: 5, done: 4, failed: 1 });
    expect(job.errors).toEqual([
      { serialNumber: 'lacks-event-0', message: expect.stringMatching(/unknown field key "points"/) },
    ]);
    const states = await passStates(serials);
    for (const serial of loyalty) {
      expect(states.get(serial)).toMatchObject({ version: 2, bundleVersion: 2, fields: { points: 4 } });
    }
    expect(states.get('lacks-event-0')).toMatchObject({
      version: 1,
      bundleVersion: 1,
      fields: { event: 'Gig' },
    });
  });

  it('retries a page whose transaction fails on a database error, and changes its passes once', async () => {
    const serials = await createPasses(server, 'membership', 'flaky', 6, {
      member: 'Flaky',
      level: 'silver',
    });
    const states = await passStates(serials);
    const flakyId = states.get('flaky-4')?.id ?? -1n;
    await registerDevice(server, 'flaky-4', 'token-flaky-4');
    await server.database.prisma.pushOutbox.deleteMany();
    const prisma = server.database.prisma;
    // A real database error, once: the sequence counts outside the transaction, so the retry passes.
    await prisma.$executeRawUnsafe('CREATE SEQUENCE bulk_test_flaky');
    // Nested, so that the sequence counts the flaky pass's rows only.
    const flaky = `
      IF NEW.pass_id = ${flakyId} THEN
        IF nextval('bulk_test_flaky') = 1 THEN RAISE EXCEPTION 'bulk test: injected failure'; END IF;
      END IF;`;
    await withBundleInsertTrigger('bulk_test_flaky', flaky, async () => {
      startRunner({ pageSize: 3, pageAttempts: 3 });
      const jobId = await postJob({
        select: { template: 'membership', fields: { member: 'Flaky' } },
        change: { fields: { level: 'gold' } },
      });
      const job = await waitForJob(jobId);
      expect(job).toMatchObject({ status: 'done', matched: 6, done: 6, failed: 0, errors: [] });
      const counted = await prisma.$queryRawUnsafe<Array<{ calls: bigint }>>(
        'SELECT last_value AS calls FROM bulk_test_flaky',
      );
      // Tried twice: the injected failure, then the retry.
      expect(counted).toEqual([{ calls: 2n }]);
    }).finally(() => prisma.$executeRawUnsafe('DROP SEQUENCE bulk_test_flaky'));
    for (const state of (await passStates(serials)).values())
      expect(state).toMatchObject({ version: 2, bundleVersion: 2, fields: { level: 'gold' } });
    expect(await outboxCountsByToken()).toEqual({ 'token-flaky-4': 1 });
  });

  it('fails the job on a page that keeps failing, leaves nothing of that page, and resumes after its cursor', async () => {
    const serials = await createPasses(server, 'membership', 'broken', 7, {
      member: 'Broken',
      level: 'silver',
    });
    const states = await passStates(serials);
    const id = (serial: string) => states.get(serial)?.id ?? -1n;
    for (const serial of serials) await registerDevice(server, serial, `token-${serial}`);
    await server.database.prisma.pushOutbox.deleteMany();
    const prisma = server.database.prisma;
    const broken = `IF NEW.pass_id = ${id('broken-4')} THEN RAISE EXCEPTION 'bulk test: injected failure'; END IF;`;
    const jobId = await withBundleInsertTrigger('bulk_test_broken', broken, async () => {
      const runner = startRunner({ pageSize: 3, pageAttempts: 2 });
      const jobId = await postJob({
        select: { template: 'membership', fields: { member: 'Broken' } },
        change: { fields: { level: 'gold' } },
      });
      const failed = await waitForJob(jobId);
      expect(failed).toMatchObject({ status: 'failed', done: 3, failed: 0, cursor: id('broken-2') });
      expect(JSON.stringify(failed.errors)).toMatch(/injected failure/);
      await runner.stop();
      return jobId;
    });
    // The first page committed; the failing page and the one read ahead left nothing: no version, no push.
    const versions = async () =>
      [...(await passStates(serials)).values()].map((state) => [state.version, state.bundleVersion]);
    expect(await versions()).toEqual([
      [2, 2],
      [2, 2],
      [2, 2],
      [1, 1],
      [1, 1],
      [1, 1],
      [1, 1],
    ]);
    expect(Object.keys(await outboxCountsByToken()).sort()).toEqual([
      'token-broken-0',
      'token-broken-1',
      'token-broken-2',
    ]);

    // A crash in the middle of that page leaves the same state: running, its lease run out. Resumed, it changes
    // the remaining passes once and never a pass of the committed page again.
    await prisma.bulkJob.update({
      where: { id: jobId },
      data: { status: 'running', leaseUntil: new Date(Date.now() - 1_000), finishedAt: null },
    });
    startRunner({ pageSize: 3 });
    expect(await waitForJob(jobId)).toMatchObject({ status: 'done', matched: 7, done: 7, failed: 0 });
    expect(await versions()).toEqual(serials.map(() => [2, 2]));
    expect(await outboxCountsByToken()).toEqual(
      Object.fromEntries(serials.map((serial) => [`token-${serial}`, 1])),
    );
  });

  it('rolls a page back when the lease was lost, without failing the job', async () => {
    const serials = await createPasses(server, 'membership', 'lease', 6, {
      member: 'Lease',
      level: 'silver',
    });
    const ids = [...(await passStates(serials)).values()].map((state) => state.id);
    const prisma = server.database.prisma;
    // Another runner taking the job over while the second page is written: its claim moves lease_until. (Done
    // here inside the page's own transaction, so it is certain to come before the page's progress is saved.)
    const takeOver = `
      IF NEW.pass_id = ${ids[3]} THEN
        UPDATE bulk_jobs SET lease_until = lease_until + interval '1 hour' WHERE status = 'running';
      END IF;`;
    const jobId = await withBundleInsertTrigger('bulk_test_take_over', takeOver, async () => {
      const runner = startRunner({ pageSize: 3 });
      const jobId = await postJob({
        select: { template: 'membership', fields: { member: 'Lease' } },
        change: { fields: { level: 'gold' } },
      });
      await expect.poll(async () => (await jobRow(jobId)).cursor, { timeout: 10_000 }).toBe(ids[2]);
      await runner.idle();
      return jobId;
    });
    // Not failed (the other runner carries on), and nothing of the second page written by this one.
    expect(await jobRow(jobId)).toMatchObject({ status: 'running', cursor: ids[2], done: 3, errors: [] });
    const versions = async () => [...(await passStates(serials)).values()].map((state) => state.version);
    expect(await versions()).toEqual([2, 2, 2, 1, 1, 1]);

    // Its lease run out (that runner died too), the job is claimed again and finished.
    await prisma.bulkJob.update({ where: { id: jobId }, data: { leaseUntil: new Date(Date.now() - 1_000) } });
    expect(await waitForJob(jobId)).toMatchObject({ status: 'done', done: 6, failed: 0 });
    expect(await versions()).toEqual(serials.map(() => 2));
  });

  it('stops after the page in flight on stop() (SIGTERM), gives the job back, and another runner finishes it', async () => {
    const serials = await createPasses(server, 'membership', 'sigterm', 9, {
      member: 'Sigterm',
      level: 'silver',
    });
    const ids = [...(await passStates(serials)).values()].map((state) => state.id);
    let stopping: Promise<void> | undefined;
    // Stopped right after its first page commits (afterChange runs once per committed page), before the second.
    const first: BulkRunner = startRunner({
      pageSize: 3,
      deps: {
        ...passesDeps(server),
        afterChange: () => {
          stopping ??= first.stop();
        },
      },
    });
    const jobId = await postJob({
      select: { template: 'membership', fields: { member: 'Sigterm' } },
      change: { fields: { level: 'gold' } },
    });
    await expect.poll(() => stopping !== undefined, { timeout: 10_000 }).toBe(true);
    await stopping;
    // Still running, given back (no lease): claimable at once. Its cursor is the first page's last pass, and the
    // second page, read and signed ahead, was not written.
    expect(await jobRow(jobId)).toMatchObject({
      status: 'running',
      leaseUntil: null,
      cursor: ids[2],
      done: 3,
    });
    const states = async () => [...(await passStates(serials)).values()].map((state) => state.version);
    expect(await states()).toEqual([2, 2, 2, 1, 1, 1, 1, 1, 1]);

    startRunner({ pageSize: 3 });
    expect(await waitForJob(jobId)).toMatchObject({ status: 'done', matched: 9, done: 9, failed: 0 });
    expect(await states()).toEqual(serials.map(() => 2));
  });

  it('starts a posted job at once: POST /admin/passes/bulk wakes the runner', async () => {
    const [serial] = await createPasses(server, 'loyalty', 'woken', 1, { points: 1 });
    // A runner that would look for jobs only every 10 minutes, behind an app wired as src/server.ts wires it.
    const runner = startRunner({ pollIntervalMs: 600_000 });
    const app = await buildApp({
      ...passesDeps(server),
      database: server.database,
      log: silent,
      adminToken: 'wake-test-admin-token-0123456789',
      publicUrl: server.baseUrl,
      downloadLinkTtlSeconds: 3600,
      wakeBulkRunner: () => runner.wake(),
    });
    try {
      // Past the runner's first look (no job then): it now sleeps until woken.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const posted = await app.inject({
        method: 'POST',
        url: '/admin/passes/bulk',
        headers: { authorization: 'Bearer wake-test-admin-token-0123456789' },
        payload: { select: { serialNumbers: [serial] }, change: { fields: { points: 2 } } },
      });
      expect(posted.statusCode).toBe(202);
      const job = await waitForJob((posted.json() as { jobId: string }).jobId);
      expect(job).toMatchObject({ status: 'done', done: 1 });
    } finally {
      await app.close();
    }
  });

  describe.skipIf(testDatabaseKind !== 'postgresql')('with a concurrent PATCH (PostgreSQL)', () => {
    it('applies both changes: the page re-signs a pass PATCHed after it was read, from its new fields', async () => {
      const serials = await createPasses(server, 'loyalty', 'race', 4, { points: 1, member: 'Ada' });
      const raced = 'race-1';
      const racedId = (await passStates([raced])).get(raced)?.id;
      const locker = new pg.Client({ connectionString: database.url });
      const watcher = new pg.Client({ connectionString: database.url });
      await locker.connect();
      await watcher.connect();
      const waitingOnLocks = async () => {
        const { rows } = await watcher.query<{ waiting: number }>(
          `SELECT count(*)::int AS waiting FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        return rows[0]?.waiting ?? 0;
      };
      try {
        // The interleaving, made certain with a row lock held here: the PATCH waits for the pass first; then the
        // bulk page reads it (no lock, version 1), signs it and waits for it too. Released, the PATCH commits
        // version 2, and the page finds its pass no longer at the version it signed.
        await locker.query('BEGIN');
        await locker.query('SELECT 1 FROM passes WHERE id = $1 FOR UPDATE', [racedId]);
        const patch = server.admin('PATCH', `/admin/passes/${passType()}/${raced}`, {
          fields: { member: 'Grace' },
        });
        await expect.poll(waitingOnLocks, { timeout: 10_000 }).toBe(1);
        startRunner({ pageSize: 10 });
        const jobId = await postJob({
          select: { serialNumbers: serials },
          change: { fields: { points: 500 } },
        });
        await expect.poll(waitingOnLocks, { timeout: 10_000 }).toBe(2);
        await locker.query('COMMIT');

        const patched = await patch;
        expect(patched.status).toBe(200);
        // The PATCH was first in line: it made version 2 from the fields before the bulk change.
        expect(patched.body).toMatchObject({ version: 2, fields: { points: 1, member: 'Grace' } });
        expect(await waitForJob(jobId)).toMatchObject({ status: 'done', done: 4, failed: 0 });
      } finally {
        await locker.end();
        await watcher.end();
      }
      const states = await passStates(serials);
      const state = states.get(raced);
      // Both changes, and a bundle of the final version built from the final fields (not from the stale read).
      expect(state).toMatchObject({ version: 3, bundleVersion: 3, fields: { points: 500, member: 'Grace' } });
      const fields = bundleFields(state?.bundle);
      expect(fields.get('points')?.value).toBe(500);
      expect(fields.get('member')?.value).toBe('Grace');
      for (const serial of serials.filter((serial) => serial !== raced))
        expect(states.get(serial)).toMatchObject({ version: 2, bundleVersion: 2, fields: { member: 'Ada' } });
    });
  });
});
