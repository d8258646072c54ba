/*
 * POST /admin/passes/bulk and GET /admin/bulk/{jobId}: the job runner of src/passes/bulk.ts, on the test database
 * (PGlite, or PostgreSQL with TEST_DATABASE_URL). Pages of 3 passes, so every selection spans several pages.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BulkRunner, startBulkRunner } from '../../../src/passes/bulk.js';
import { startTestServer, type TestServer } from '../../support/server.js';
import { createPasses, passesDeps, registerDevice } from './bulk-fixtures.js';

let server: TestServer;
let runner: BulkRunner;

beforeAll(async () => {
  server = await startTestServer();
  runner = startBulkRunner({
    deps: passesDeps(server),
    log: pino({ level: 'silent' }),
    pageSize: 3,
    concurrency: 2,
    pollIntervalMs: 20,
  });
});
afterAll(async () => {
  await runner?.stop();
  await server?.close();
});

interface JobView {
  jobId: string;
  status: string;
  matched: number | null;
  done: number;
  failed: number;
  errors: Array<{ serialNumber: string | null; message: string }>;
  startedAt: string | null;
  finishedAt: string | null;
}

async function waitForJob(jobId: string): Promise<JobView> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const { status, body } = await server.admin('GET', `/admin/bulk/${jobId}`);
    expect(status).toBe(200);
    const job = body as unknown as JobView;
    if (job.status === 'done' || job.status === 'failed') return job;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`bulk job ${jobId} not finished within 30 s`);
}

async function passState(serialNumber: string) {
  const pass = await server.database.prisma.pass.findFirstOrThrow({
    where: { serialNumber },
    include: { bundle: { select: { version: true } } },
  });
  return { version: pass.version, bundleVersion: pass.bundle?.version, fields: pass.fields };
}

async function outboxTokens(): Promise<string[]> {
  const rows = await server.database.prisma.pushOutbox.findMany({ select: { pushToken: true } });
  return rows.map((row) => row.pushToken).sort();
}

describe('bulk changes', () => {
  it('changes exactly the passes given by serial, as PATCH does, with outbox rows for their devices', async () => {
    const selected = await createPasses(server, 'loyalty', 'serials-in', 7, { points: 1, member: 'Ada' });
    const others = await createPasses(server, 'loyalty', 'serials-out', 2, { points: 1 });
    await registerDevice(server, 'serials-in-0', 'token-serials-in-0');
    await registerDevice(server, 'serials-in-6', 'token-serials-in-6');
    await registerDevice(server, 'serials-out-0', 'token-serials-out-0');

    const posted = await server.admin('POST', '/admin/passes/bulk', {
      select: { serialNumbers: selected },
      change: {
        fields: { points: 500 },
        changeMessages: { points: 'You have %@ points' },
        strings: { de: { Points: 'Punkte' } },
      },
    });
    expect(posted.status).toBe(202);
    expect(posted.body).toMatchObject({ status: 'queued', done: 0, failed: 0, errors: [] });
    const job = await waitForJob(String(posted.body.jobId));
    expect(job).toMatchObject({ status: 'done', matched: 7, done: 7, failed: 0, errors: [] });
    expect(job.startedAt).not.toBeNull();
    expect(job.finishedAt).not.toBeNull();

    for (const serial of selected) {
      expect(await passState(serial)).toEqual({
        version: 2,
        bundleVersion: 2,
        fields: { points: 500, member: 'Ada' },
      });
    }
    for (const serial of others)
      expect(await passState(serial)).toMatchObject({ version: 1, bundleVersion: 1 });
    const tokens = await outboxTokens();
    expect(tokens).toContain('token-serials-in-0');
    expect(tokens).toContain('token-serials-in-6');
    expect(tokens).not.toContain('token-serials-out-0');
    // What a device then downloads is the new version, signed.
    const read = await server.admin(
      'GET',
      `/admin/passes/${server.identity.passTypeIdentifier}/serials-in-3`,
    );
    expect(read.body).toMatchObject({
      version: 2,
      changeMessages: { points: 'You have %@ points' },
      strings: { de: { Points: 'Punkte' } },
    });
  });

  it('changes every pass of a template whose field values equal the selection, and no other', async () => {
    const matching = await createPasses(server, 'event', 'gig-a', 5, { event: 'Gig A', section: '1' });
    const otherEvent = await createPasses(server, 'event', 'gig-b', 2, { event: 'Gig B', section: '1' });
    const otherSection = await createPasses(server, 'event', 'gig-a2', 1, { event: 'Gig A', section: '2' });
    const otherTemplate = await createPasses(server, 'boarding', 'flight-a', 1, { gate: 'A1' });
    await registerDevice(server, 'gig-a-4', 'token-gig-a-4');
    await registerDevice(server, 'gig-b-0', 'token-gig-b-0');

    const posted = await server.admin('POST', '/admin/passes/bulk', {
      select: { template: 'event', fields: { event: 'Gig A', section: '1' } },
      change: { fields: { gate: 'B12' } },
    });
    expect(posted.status).toBe(202);
    const job = await waitForJob(String(posted.body.jobId));
    expect(job).toMatchObject({ status: 'done', matched: 5, done: 5, failed: 0 });
    for (const serial of matching) {
      expect(await passState(serial)).toEqual({
        version: 2,
        bundleVersion: 2,
        fields: { event: 'Gig A', section: '1', gate: 'B12' },
      });
    }
    for (const serial of [...otherEvent, ...otherSection, ...otherTemplate])
      expect(await passState(serial)).toMatchObject({ version: 1 });
    const tokens = await outboxTokens();
    expect(tokens).toContain('token-gig-a-4');
    expect(tokens).not.toContain('token-gig-b-0');
  });

  it('counts a pass whose change fails, and a serial that names no pass, and still changes the others', async () => {
    const loyalty = await createPasses(server, 'loyalty', 'mixed-loyalty', 4, { points: 3 });
    // The event template has no "points" field: that pass's change is refused like PATCH would refuse it.
    const [event] = await createPasses(server, 'event', 'mixed-event', 1);
    const posted = await server.admin('POST', '/admin/passes/bulk', {
      select: { serialNumbers: [loyalty[0], event, 'no-such-pass', ...loyalty.slice(1)] },
      change: { fields: { points: 4 } },
    });
    const job = await waitForJob(String(posted.body.jobId));
    expect(job).toMatchObject({ status: 'done', matched: 5, done: 4, failed: 2 });
    expect(job.errors.map((error) => error.serialNumber).sort()).toEqual(['mixed-event-0', 'no-such-pass']);
    expect(job.errors.find((error) => error.serialNumber === 'mixed-event-0')?.message).toMatch(/points/);
    for (const serial of loyalty)
      expect(await passState(serial)).toMatchObject({ version: 2, fields: { points: 4 } });
    expect(await passState(String(event))).toMatchObject({ version: 1, bundleVersion: 1 });
  });

  it('validates the change and the selection before a job exists', async () => {
    const before = await server.database.prisma.bulkJob.count();
    const refused = [
      { select: { serialNumbers: ['x'] }, change: {} },
      { select: { serialNumbers: ['x'] }, change: { changeMessages: { points: 'no placeholder' } } },
      { select: { serialNumbers: ['x'] }, change: { pass: { backgroundColor: 'red' } } },
      { select: { template: 'no-such-template' }, change: { fields: { points: 1 } } },
      { select: { template: 'loyalty', fields: { unknownKey: 1 } }, change: { fields: { points: 1 } } },
      { select: { template: 'loyalty' }, change: { fields: { gate: 'B12' } } },
      { select: { serialNumbers: ['a/b'] }, change: { fields: { points: 1 } } },
      { select: { everything: true }, change: { fields: { points: 1 } } },
    ];
    for (const body of refused) {
      const answer = await server.admin('POST', '/admin/passes/bulk', body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
    }
    expect(await server.database.prisma.bulkJob.count()).toBe(before);
    expect((await server.admin('GET', '/admin/bulk/not-a-uuid')).status).toBe(400);
    expect((await server.admin('GET', '/admin/bulk/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('finishes an empty selection with nothing to do', async () => {
    const posted = await server.admin('POST', '/admin/passes/bulk', {
      select: { serialNumbers: [] },
      change: { fields: { points: 1 } },
    });
    expect(posted.status).toBe(202);
    expect(await waitForJob(String(posted.body.jobId))).toMatchObject({
      status: 'done',
      matched: 0,
      done: 0,
      failed: 0,
    });
  });

  it('resumes an interrupted job after its cursor, without changing a pass twice', async () => {
    // Selected by a field the change does not touch: a changed pass still matches, so only the cursor keeps it
    // from a second change.
    const serials = await createPasses(server, 'membership', 'resume', 8, {
      member: 'Resume Test',
      level: 'silver',
    });
    const prisma = server.database.prisma;
    const ids = (
      await prisma.pass.findMany({ where: { serialNumber: { in: serials } }, orderBy: { id: 'asc' } })
    ).map((pass) => pass.id);
    const jobId = '11111111-1111-4111-8111-111111111111';
    // The state a runner that died leaves: running, its lease run out, the cursor after the third pass (that
    // page committed with it). The page that was in flight committed nothing: a page commits whole or not at all.
    await prisma.bulkJob.create({
      data: {
        id: jobId,
        selection: { template: 'membership', fields: { member: 'Resume Test' } },
        change: { fields: { level: 'gold' } },
        status: 'running',
        cursor: ids[2] as bigint,
        matched: 8,
        done: 3,
        startedAt: new Date(Date.now() - 120_000),
        leaseUntil: new Date(Date.now() - 1_000),
      },
    });

    const job = await waitForJob(jobId);
    expect(job).toMatchObject({ status: 'done', matched: 8, done: 8, failed: 0 });
    const versions = await Promise.all(serials.map(async (serial) => (await passState(serial)).version));
    // The first three stayed as they were (the test never changed them): the runner did not go back before the cursor.
    expect(versions).toEqual([1, 1, 1, 2, 2, 2, 2, 2]);
    expect(await passState(String(serials[7]))).toMatchObject({
      bundleVersion: 2,
      fields: { level: 'gold' },
    });
  });
});
