/*
 * Bulk changes: one change applied to many passes as one job (POST /admin/passes/bulk). The job is a row in
 * bulk_jobs; a runner in every server instance claims jobs with FOR UPDATE SKIP LOCKED and a lease (as the push
 * outbox does) and works through the matching passes in pages of ids (keyset pagination, so memory stays flat
 * whatever the selection's size). Each page is changed as PATCH changes each of its passes, set-based
 * (src/passes/bulk-page.ts): read and signed without locks, then written in one short transaction together with
 * the job's cursor and counts. A pass whose change fails is counted and skipped; a page whose transaction fails is
 * retried, then fails the job. A job interrupted by a restart resumes after its cursor: a page committed whole or
 * not at all, so no pass gets the change twice. The next page is read and signed while the current one is written.
 */
import { randomUUID } from 'node:crypto';
import type { Database, PrismaClient } from '../db/database.js';
import { Prisma } from '../db/generated/client.js';
import { InvalidError, NotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';
import {
  type BulkError,
  commitPage,
  type JobLease,
  LeaseLostError,
  MAX_ERRORS,
  messageOf,
  type Page,
  type PageOptions,
  readPage,
  saveProgress,
} from './bulk-page.js';
import { checkFieldKeys, type FieldValues } from './pass-content.js';
import { type PassChange, type PassesDeps, prismaQuery } from './passes.js';

export type BulkSelection =
  | { serialNumbers: string[] }
  | { template: string; fields?: FieldValues | undefined };
export type BulkStatus = 'queued' | 'running' | 'done' | 'failed';

export type BulkJobView = {
  jobId: string;
  status: BulkStatus;
  /** How many passes the selection matched; null until the runner has counted them. */
  matched: number | null;
  done: number;
  failed: number;
  /** The first few failures (MAX_ERRORS). */
  errors: BulkError[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
};

interface JobRow {
  id: string;
  selection: Prisma.JsonValue;
  change: Prisma.JsonValue;
  status: string;
  cursor: bigint;
  matched: number | null;
  done: number;
  failed: number;
  errors: Prisma.JsonValue;
  lease_until: Date | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

function toView(row: JobRow): BulkJobView {
  return {
    jobId: row.id,
    status: row.status as BulkStatus,
    matched: row.matched,
    done: row.done,
    failed: row.failed,
    errors: row.errors as unknown as BulkError[],
    createdAt: row.created_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
  };
}

/**
 * Stores a job (status queued) after checking what can be checked once for all passes: the template exists and
 * knows the selection's and the change's field keys. With a list of serials the passes may be of several templates,
 * so field keys are checked per pass (a pass whose template lacks one is counted failed).
 */
export async function createBulkJob(
  deps: Pick<PassesDeps, 'prisma' | 'templates'>,
  selection: BulkSelection,
  change: PassChange,
): Promise<BulkJobView> {
  if ('template' in selection) {
    const template = deps.templates.get(selection.template);
    if (!template) {
      const known = [...deps.templates.keys()].join(', ');
      throw new InvalidError(`Unknown template "${selection.template}"; known templates: ${known || 'none'}`);
    }
    checkFieldKeys(template, [
      ...Object.keys(selection.fields ?? {}),
      ...Object.keys(change.fields ?? {}),
      ...Object.keys(change.changeMessages ?? {}),
    ]);
  }
  const rows = await deps.prisma.$queryRaw<JobRow[]>`
    INSERT INTO bulk_jobs (id, selection, change)
    VALUES (${randomUUID()}::uuid, ${JSON.stringify(selection)}::jsonb, ${JSON.stringify(change)}::jsonb)
    RETURNING *`;
  const row = rows[0];
  if (!row) throw new Error('INSERT … RETURNING gave no row');
  return toView(row);
}

export async function getBulkJob(deps: Pick<PassesDeps, 'prisma'>, jobId: string): Promise<BulkJobView> {
  const rows = await deps.prisma.$queryRaw<JobRow[]>`SELECT * FROM bulk_jobs WHERE id = ${jobId}::uuid`;
  const row = rows[0];
  if (!row) throw new NotFoundError(`No bulk job ${jobId}`);
  return toView(row);
}

export interface BulkRunnerOptions {
  deps: PassesDeps;
  /** The database of deps.prisma: pages are written in its driver's transactions (src/passes/bulk-page.ts). */
  database: Pick<Database, 'transaction'>;
  log: Logger;
  /**
   * Passes read, signed and written per page; the cursor commits with each page. 100 by default: a page of the
   * event template's ≈ 140 kB bundles is ≈ 14 MB, held twice (the page being written and the one read ahead), and
   * larger pages were no faster (bench/RESULTS.md).
   */
  pageSize?: number;
  /** Passes of a page signed at once (the pool queues them anyway; this bounds what waits in it). */
  concurrency?: number;
  /** How often to look for jobs when not woken (other instances' jobs, jobs whose runner died). */
  pollIntervalMs?: number;
  /** How long a claim holds without progress; renewed with every page, so far longer than a page takes. */
  leaseMs?: number;
  /** Longest a page's transaction may take before it is rolled back (and retried). */
  transactionTimeoutMs?: number;
  /** Attempts at a page (its read, its transaction) before a database error fails the job. */
  pageAttempts?: number;
}

export interface BulkRunner {
  /** A job was created: look for it now instead of at the next poll. */
  wake(): void;
  /** For tests: resolves once no job is left to claim. */
  idle(): Promise<void>;
  /** SIGTERM: finish the current page, commit its cursor, give the job back (claimable at once), stop. */
  stop(): Promise<void>;
}

export function startBulkRunner(options: BulkRunnerOptions): BulkRunner {
  const { deps, log } = options;
  const prisma = deps.prisma;
  const pageSize = options.pageSize ?? 100;
  const concurrency = options.concurrency ?? 16;
  // The admin route wakes the runner of its own instance; polling finds the others' jobs and orphaned ones.
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const leaseMs = options.leaseMs ?? 60_000;
  const transactionTimeoutMs = options.transactionTimeoutMs ?? 30_000;
  const pageAttempts = Math.max(1, options.pageAttempts ?? 4);
  let stopping = false;
  let woken = false;
  let wakeWaiter: (() => void) | undefined;
  let idleWaiters: Array<() => void> = [];

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      if (woken || stopping) {
        woken = false;
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        wakeWaiter = undefined;
        resolve();
      }, ms);
      wakeWaiter = () => {
        clearTimeout(timer);
        wakeWaiter = undefined;
        resolve();
      };
    });

  const wake = () => {
    woken = true;
    wakeWaiter?.();
  };

  const loop = async () => {
    while (!stopping) {
      let job: JobRow | undefined;
      try {
        job = await claimJob(prisma, deps.clock.now(), leaseMs);
        if (job) await runJob(job);
      } catch (error) {
        if (error instanceof LeaseLostError) {
          log.warn({ jobId: job?.id }, 'bulk job taken over by another runner (lease ran out)');
        } else {
          // Not a pass's failure (those are counted): the database or this code failed, so the job stops here.
          log.error({ err: error, jobId: job?.id }, 'bulk job failed');
          if (job)
            await failJob(job, error).catch((err: unknown) =>
              log.error({ err }, 'bulk job not marked failed'),
            );
        }
      }
      if (job) continue;
      for (const resolve of idleWaiters) resolve();
      idleWaiters = [];
      await wait(pollIntervalMs);
    }
  };

  async function failJob(job: JobRow, error: unknown) {
    const errors = [{ serialNumber: null, message: messageOf(error) }];
    await prisma.$executeRaw`
      UPDATE bulk_jobs SET status = 'failed', finished_at = ${deps.clock.now()}::timestamptz, lease_until = NULL,
        errors = errors || ${JSON.stringify(errors)}::jsonb
      WHERE id = ${job.id}::uuid AND status = 'running'`;
  }

  /**
   * A page's read or transaction, tried again after a database error (a deadlock, a dropped connection, a
   * timeout): a rolled-back attempt left nothing behind. A lost lease is final: another runner has the job.
   */
  async function withRetries<T>(what: string, jobId: string, run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        if (error instanceof LeaseLostError || attempt >= pageAttempts) throw error;
        log.warn({ err: error, jobId, attempt }, `bulk job: ${what} failed, trying again`);
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
  }

  async function runJob(job: JobRow) {
    const selection = job.selection as unknown as BulkSelection;
    const change = job.change as unknown as PassChange;
    let errors = [...(job.errors as unknown as BulkError[])];
    const lease: JobLease = { jobId: job.id, lease: job.lease_until as Date, leaseMs };
    const where = selectionSql(job.id, selection, deps.identity.passTypeIdentifier);
    const pageOptions: PageOptions = { deps, change, concurrency };
    const pages = await withRetries('reading the selection', job.id, () =>
      pageReader(selection, where, pageOptions, pageSize),
    );
    if (job.matched === null) {
      // Counted once, when the job first starts: a serial that names no pass is a failure of its own.
      const matched = pages.matched ?? (await countPasses(prisma, where));
      const missing =
        'serialNumbers' in selection
          ? await prisma.$queryRaw<Array<{ serial: string }>>`
            SELECT s.serial FROM bulk_jobs j, jsonb_array_elements_text(j.selection -> 'serialNumbers') AS s(serial)
            WHERE j.id = ${job.id}::uuid AND NOT EXISTS (
              SELECT 1 FROM passes p
              WHERE p.pass_type_identifier = ${deps.identity.passTypeIdentifier} AND p.serial_number = s.serial)`
          : [];
      for (const { serial } of missing.slice(0, MAX_ERRORS - errors.length))
        errors.push({ serialNumber: serial, message: `No pass with serialNumber "${serial}"` });
      lease.lease = await saveProgress(prismaQuery(prisma), lease, deps.clock.now(), {
        matched,
        cursor: job.cursor,
        done: 0,
        failed: missing.length,
        errors,
      });
    }
    const read = (after: bigint) => handled(withRetries('reading a page', job.id, () => pages.read(after)));
    let next: Promise<Page | undefined> | undefined = read(job.cursor);
    while (next) {
      const page: Page | undefined = await next;
      if (!page) break;
      // Pipelined: the pool signs the next page while PostgreSQL writes this one. Not after SIGTERM.
      next = stopping ? undefined : read(page.lastId);
      const result = await withRetries('writing a page', job.id, () =>
        commitPage({ ...pageOptions, transactionTimeoutMs, database: options.database }, page, lease, errors),
      );
      lease.lease = result.lease;
      errors = result.errors;
      // One wake-up per page: the outbox rows of the whole page are committed by now.
      deps.afterChange?.();
      if (stopping) {
        // The page read ahead is dropped (nothing of it was written); nothing is left running after stop().
        await next?.catch(() => undefined);
        // Given back, still running: another runner (or this one after the restart) resumes after the cursor.
        await prisma.$executeRaw`
          UPDATE bulk_jobs SET lease_until = NULL
          WHERE id = ${job.id}::uuid AND lease_until = ${lease.lease}::timestamptz`;
        return;
      }
    }
    await prisma.$executeRaw`
      UPDATE bulk_jobs SET status = 'done', finished_at = ${deps.clock.now()}::timestamptz, lease_until = NULL
      WHERE id = ${job.id}::uuid AND lease_until = ${lease.lease}::timestamptz`;
  }

  const running = loop();
  return {
    wake,
    idle: () =>
      new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
        wake();
      }),
    async stop() {
      stopping = true;
      wakeWaiter?.();
      await running;
      for (const resolve of idleWaiters) resolve();
    },
  };
}

/** A promise read ahead may reject before anyone awaits it: marked handled here, it still rejects when awaited. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/**
 * The oldest job that is queued, or running with a lease that ran out (its runner died) or was given back. SKIP
 * LOCKED: runners of several instances claim at once without waiting for each other or taking the same job.
 */
async function claimJob(prisma: PrismaClient, now: Date, leaseMs: number): Promise<JobRow | undefined> {
  const leaseUntil = new Date(now.getTime() + leaseMs);
  const rows = await prisma.$queryRaw<JobRow[]>`
    UPDATE bulk_jobs SET status = 'running', lease_until = ${leaseUntil}::timestamptz,
      started_at = COALESCE(started_at, ${now}::timestamptz)
    WHERE id = (
      SELECT id FROM bulk_jobs
      WHERE status = 'queued'
        OR (status = 'running' AND (lease_until IS NULL OR lease_until < ${now}::timestamptz))
      ORDER BY created_at, id
      LIMIT 1
      FOR UPDATE SKIP LOCKED)
    RETURNING *`;
  return rows[0];
}

/**
 * Reads a job's pages after its cursor, the last pass id done (keyset on ids). For a template, each page is the next
 * passes of the selection by id. For a list of serials, the ids they name are read once, when the job is claimed, and
 * each page asks for its own 100 ids: matching the passes against the whole list on every page cost PostgreSQL
 * 0.4 s a page for a list of 100,000 (EXPLAIN ANALYZE, bench/RESULTS.md). Either way the cursor means the same, so a
 * job can move between instances of different versions.
 */
async function pageReader(
  selection: BulkSelection,
  where: Prisma.Sql,
  options: PageOptions,
  pageSize: number,
): Promise<{
  read(after: bigint): Promise<Page | undefined>;
  /** How many passes a list of serials names, known from its ids; undefined for a template, not read whole. */
  matched?: number;
}> {
  if (!('serialNumbers' in selection)) return { read: (after) => readPage(options, where, after, pageSize) };
  const named = await options.deps.prisma.$queryRaw<Array<{ id: bigint }>>`
    SELECT p.id FROM passes p WHERE ${where} ORDER BY p.id`;
  const ids = named.map((row) => row.id);
  const read = async (after: bigint) => {
    const from = firstAfter(ids, after);
    const pageIds = ids.slice(from, from + pageSize);
    const last = pageIds.at(-1);
    if (last === undefined) return undefined;
    const page = await readPage(
      options,
      Prisma.sql`p.id = ANY(${pageIds.map(String)}::bigint[])`,
      after,
      pageSize,
    );
    // Passes deleted since the ids were read are not in the page; the cursor still moves past them.
    return page ?? { passes: [], lastId: last };
  };
  return { read, matched: ids.length };
}

async function countPasses(prisma: PrismaClient, where: Prisma.Sql): Promise<number> {
  const [counted] = await prisma.$queryRaw<Array<{ matched: number }>>`
    SELECT count(*)::int AS matched FROM passes p WHERE ${where}`;
  return counted?.matched ?? 0;
}

/** The index of the first id above `after` in ascending `ids` (binary search). */
function firstAfter(ids: readonly bigint[], after: bigint): number {
  let low = 0;
  let high = ids.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((ids[middle] ?? after) <= after) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * The SQL condition on passes `p` for a selection (for a list of serials, read once per claim). Serials are read
 * from the job's own row, so a list of 100k serials is not sent with the query. Field values are strings or numbers,
 * so containment (@>) of { key: value } is equality of each given key's value, compared as JSON: 10 matches 10, not
 * "10".
 */
function selectionSql(jobId: string, selection: BulkSelection, passTypeIdentifier: string): Prisma.Sql {
  if ('serialNumbers' in selection) {
    return Prisma.sql`p.pass_type_identifier = ${passTypeIdentifier} AND p.serial_number IN (
      SELECT jsonb_array_elements_text(j.selection -> 'serialNumbers') FROM bulk_jobs j WHERE j.id = ${jobId}::uuid)`;
  }
  return Prisma.sql`p.template = ${selection.template} AND p.fields @> ${JSON.stringify(selection.fields ?? {})}::jsonb`;
}
