/*
 * Bulk changes: one change applied to many passes as one job (POST /admin/passes/bulk). The job is a row in
 * bulk_jobs; a runner in every server instance claims jobs with FOR UPDATE SKIP LOCKED and a lease (as the push
 * outbox does) and works through the matching passes in pages of ids (keyset pagination, so memory stays flat
 * whatever the selection's size). Each pass is changed exactly as PATCH changes it, in its own transaction: one
 * pass that fails is counted and does not roll back the others. After each page the job's cursor (the page's last
 * pass id) and counts commit, so a job interrupted by a restart resumes after its cursor.
 */
import { randomUUID } from 'node:crypto';
import type { PrismaClient } from '../db/database.js';
import { Prisma } from '../db/generated/client.js';
import { InvalidError, NotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';
import { checkFieldKeys, type FieldValues } from './pass-content.js';
import { applyPassChange, type PassChange, type PassesDeps, type PassKey } from './passes.js';

export type BulkSelection =
  | { serialNumbers: string[] }
  | { template: string; fields?: FieldValues | undefined };
export type BulkStatus = 'queued' | 'running' | 'done' | 'failed';

// A type, not an interface: the admin answer's loose-object schema needs an index-signature-compatible type.
export type BulkError = {
  serialNumber: string | null;
  message: string;
};

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

/** Only the first few failures are kept: a change that fails for every pass must not grow the row to 100k entries. */
const MAX_ERRORS = 20;

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
  log: Logger;
  /** Passes read per page (one query); the cursor commits after each page. */
  pageSize?: number;
  /** Passes changed at once: each holds a database connection while its bundle is signed in the pool. */
  concurrency?: number;
  /** How often to look for jobs when not woken (other instances' jobs, jobs whose runner died). */
  pollIntervalMs?: number;
  /** How long a claim holds without progress; renewed after every page, so far longer than a page takes. */
  leaseMs?: number;
}

export interface BulkRunner {
  /** A job was created: look for it now instead of at the next poll. */
  wake(): void;
  /** For tests: resolves once no job is left to claim. */
  idle(): Promise<void>;
  /** SIGTERM: finish the current page, commit its cursor, give the job back (claimable at once), stop. */
  stop(): Promise<void>;
}

interface PageRow {
  id: bigint;
  pass_type_identifier: string;
  serial_number: string;
}

export function startBulkRunner(options: BulkRunnerOptions): BulkRunner {
  const { deps, log } = options;
  const prisma = deps.prisma;
  const pageSize = options.pageSize ?? 200;
  const concurrency = options.concurrency ?? 8;
  // A new job is found by polling (the admin route has no handle on the runner): it starts within a second.
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const leaseMs = options.leaseMs ?? 60_000;
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

  async function runJob(claimed: JobRow) {
    const job = claimed;
    let lease = job.lease_until as Date;
    const selection = job.selection as unknown as BulkSelection;
    const change = job.change as unknown as PassChange;
    const errors = [...(job.errors as unknown as BulkError[])];
    const where = selectionSql(job.id, selection, deps.identity.passTypeIdentifier);
    let cursor = job.cursor;
    if (job.matched === null) {
      // Counted once, when the job first starts: a serial that names no pass is a failure of its own.
      const [counted] = await prisma.$queryRaw<Array<{ matched: number }>>`
        SELECT count(*)::int AS matched FROM passes p WHERE ${where}`;
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
      lease = await saveProgress(job.id, lease, {
        matched: counted?.matched ?? 0,
        cursor,
        done: 0,
        failed: missing.length,
        errors,
      });
    } else {
      // Resuming: passes of the interrupted page that committed their change left a marker but were not counted.
      const [uncounted] = await prisma.$queryRaw<Array<{ done: number }>>`
        SELECT count(*)::int AS done FROM bulk_job_passes WHERE job_id = ${job.id}::uuid AND pass_id > ${cursor}`;
      lease = await saveProgress(job.id, lease, { cursor, done: uncounted?.done ?? 0, failed: 0, errors });
    }
    while (true) {
      const page = await prisma.$queryRaw<PageRow[]>`
        SELECT p.id, p.pass_type_identifier, p.serial_number FROM passes p
        WHERE ${where} AND p.id > ${cursor}
        ORDER BY p.id LIMIT ${pageSize}`;
      const last = page.at(-1);
      if (!last) break;
      let done = 0;
      let failed = 0;
      await forEachConcurrently(page, concurrency, async (row) => {
        const key: PassKey = {
          passTypeIdentifier: row.pass_type_identifier,
          serialNumber: row.serial_number,
        };
        try {
          // The marker commits with the change: a page worked again after a restart skips passes already changed.
          const result = await applyPassChange(deps, key, change, async (tx, passId) => {
            const inserted = await tx.$executeRaw`
              INSERT INTO bulk_job_passes (job_id, pass_id) VALUES (${job.id}::uuid, ${passId})
              ON CONFLICT DO NOTHING`;
            return inserted > 0;
          });
          // 'already': changed before the interruption, and counted when the job was resumed.
          if (result === 'changed') done++;
        } catch (error) {
          failed++;
          if (errors.length < MAX_ERRORS)
            errors.push({ serialNumber: row.serial_number, message: messageOf(error) });
        }
      });
      cursor = last.id;
      lease = await saveProgress(job.id, lease, { cursor, done, failed, errors });
      // The markers up to the cursor are no longer needed: that page will not be worked again.
      await prisma.$executeRaw`DELETE FROM bulk_job_passes WHERE job_id = ${job.id}::uuid AND pass_id <= ${cursor}`;
      // One wake-up per page: the outbox rows of the whole page are committed by now.
      deps.afterChange?.();
      if (stopping) {
        // Given back, still running: another runner (or this one after the restart) resumes after the cursor.
        await prisma.$executeRaw`
          UPDATE bulk_jobs SET lease_until = NULL WHERE id = ${job.id}::uuid AND lease_until = ${lease}::timestamptz`;
        return;
      }
    }
    await prisma.$executeRaw`
      UPDATE bulk_jobs SET status = 'done', finished_at = ${deps.clock.now()}::timestamptz, lease_until = NULL
      WHERE id = ${job.id}::uuid AND lease_until = ${lease}::timestamptz`;
    await prisma.$executeRaw`DELETE FROM bulk_job_passes WHERE job_id = ${job.id}::uuid`;
  }

  /** Commits a page's progress and renews the lease; throws when the lease was lost (another runner has the job). */
  async function saveProgress(
    jobId: string,
    lease: Date,
    progress: { cursor: bigint; done: number; failed: number; errors: BulkError[]; matched?: number },
  ): Promise<Date> {
    const renewed = new Date(deps.clock.now().getTime() + leaseMs);
    const count = await prisma.$executeRaw`
      UPDATE bulk_jobs SET
        cursor = ${progress.cursor}, done = done + ${progress.done}, failed = failed + ${progress.failed},
        errors = ${JSON.stringify(progress.errors)}::jsonb,
        matched = COALESCE(${progress.matched ?? null}::int, matched),
        lease_until = ${renewed}::timestamptz
      WHERE id = ${jobId}::uuid AND status = 'running' AND lease_until = ${lease}::timestamptz`;
    if (count === 0) throw new LeaseLostError(jobId);
    return renewed;
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

/** Another runner claimed the job after this one's lease ran out: this one stops quietly, without failing the job. */
class LeaseLostError extends Error {
  constructor(jobId: string) {
    super(`lease on bulk job ${jobId} lost`);
  }
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
 * The SQL condition on passes `p` for a selection. Serials are read from the job's own row, so a list of 100k
 * serials is not sent with every page's query. Field values are strings or numbers, so containment (@>) of
 * { key: value } is equality of each given key's value, compared as JSON: 10 matches 10, not "10".
 */
function selectionSql(jobId: string, selection: BulkSelection, passTypeIdentifier: string): Prisma.Sql {
  if ('serialNumbers' in selection) {
    return Prisma.sql`p.pass_type_identifier = ${passTypeIdentifier} AND p.serial_number IN (
      SELECT jsonb_array_elements_text(j.selection -> 'serialNumbers') FROM bulk_jobs j WHERE j.id = ${jobId}::uuid)`;
  }
  return Prisma.sql`p.template = ${selection.template} AND p.fields @> ${JSON.stringify(selection.fields ?? {})}::jsonb`;
}

async function forEachConcurrently<T>(items: T[], concurrency: number, run: (item: T) => Promise<void>) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await run(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 500);
}
