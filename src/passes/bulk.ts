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
import type { BulkJobRecord, SelectionReads } from '../db/bulk-jobs.js';
import { NotFoundError } from '../errors.js';
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
} from './bulk-page.js';
import { checkFieldKeys, type FieldValues } from './pass-content.js';
import { findTemplate, type PassChange, type PassesDeps } from './passes.js';

export type BulkSelection =
  | { passTypeIdentifier?: string | undefined; serialNumbers: string[] }
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

function toView(job: BulkJobRecord): BulkJobView {
  return {
    jobId: job.id,
    status: job.status as BulkStatus,
    matched: job.matched,
    done: job.done,
    failed: job.failed,
    errors: job.errors,
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
  };
}

/**
 * Stores a job (status queued) after checking what can be checked once for all passes: the template exists and
 * knows the selection's and the change's field keys, and has the version the change moves passes to. With a list
 * of serials the passes may be of several templates, so field keys are checked per pass (a pass whose template
 * lacks one is counted failed).
 */
export async function createBulkJob(
  deps: Pick<PassesDeps, 'repositories' | 'templates'>,
  selection: BulkSelection,
  change: PassChange,
): Promise<BulkJobView> {
  await checkBulkChange(deps, selection, change);
  return toView(await deps.repositories.bulkJobs.create(selection, { ...change }));
}

/** The dry run of a bulk change: checked as createBulkJob checks it; how many passes and devices it would reach. */
export async function previewBulkChange(
  deps: Pick<PassesDeps, 'repositories' | 'templates' | 'identities'>,
  selection: BulkSelection,
  change: PassChange,
): Promise<{ passes: number; devices: number }> {
  await checkBulkChange(deps, selection, change);
  return deps.repositories.bulkJobs.preview(selection, deps.identities.primary().signing.passTypeIdentifier);
}

async function checkBulkChange(
  deps: Pick<PassesDeps, 'templates'>,
  selection: BulkSelection,
  change: PassChange,
): Promise<void> {
  if (!('template' in selection)) return;
  // Checked against its latest version (or the one the change moves to); a pass of another version whose template
  // lacks a key is counted failed.
  const template = await findTemplate(deps, selection.template, change.templateVersion);
  checkFieldKeys(template, [
    ...Object.keys(selection.fields ?? {}),
    ...Object.keys(change.fields ?? {}),
    ...Object.keys(change.changeMessages ?? {}),
  ]);
}

export async function getBulkJob(
  deps: Pick<PassesDeps, 'repositories'>,
  jobId: string,
): Promise<BulkJobView> {
  const job = await deps.repositories.bulkJobs.find(jobId);
  if (!job) throw new NotFoundError(`No bulk job ${jobId}`);
  return toView(job);
}

export interface BulkRunnerOptions {
  deps: PassesDeps;
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
  const jobs = deps.repositories.bulkJobs;
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
      let job: BulkJobRecord | undefined;
      try {
        job = await jobs.claim(deps.clock.now(), leaseMs);
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

  async function failJob(job: BulkJobRecord, error: unknown) {
    await jobs.fail(job.id, deps.clock.now(), [{ serialNumber: null, message: messageOf(error) }]);
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

  async function runJob(job: BulkJobRecord) {
    // Stored by createBulkJob from the admin API's validated body.
    const selection = job.selection as BulkSelection;
    const change = job.change as PassChange;
    let errors = [...job.errors];
    const lease: JobLease = { jobId: job.id, lease: job.leaseUntil as Date, leaseMs };
    const reads = jobs.selection(job.id, selection, deps.identities.primary().signing.passTypeIdentifier);
    const pageOptions: PageOptions = { deps, change, concurrency };
    const pages = await withRetries('reading the selection', job.id, () =>
      pageReader(selection, reads, pageOptions, pageSize),
    );
    if (job.matched === null) {
      // Counted once, when the job first starts: a serial that names no pass is a failure of its own.
      const matched = pages.matched ?? (await reads.count());
      const missing = await reads.missingSerials();
      for (const serial of missing.slice(0, MAX_ERRORS - errors.length))
        errors.push({ serialNumber: serial, message: `No pass with serialNumber "${serial}"` });
      const renewed = await jobs.saveProgress(lease, deps.clock.now(), {
        matched,
        cursor: job.cursor,
        done: 0,
        failed: missing.length,
        errors,
      });
      if (!renewed) throw new LeaseLostError(job.id);
      lease.lease = renewed;
    }
    const read = (after: bigint) => handled(withRetries('reading a page', job.id, () => pages.read(after)));
    let next: Promise<Page | undefined> | undefined = read(job.cursor);
    while (next) {
      const page: Page | undefined = await next;
      if (!page) break;
      // Pipelined: the pool signs the next page while PostgreSQL writes this one. Not after SIGTERM.
      next = stopping ? undefined : read(page.lastId);
      const result = await withRetries('writing a page', job.id, () =>
        commitPage({ ...pageOptions, transactionTimeoutMs }, page, lease, errors),
      );
      lease.lease = result.lease;
      errors = result.errors;
      // One wake-up per page: the outbox rows of the whole page are committed by now.
      deps.afterChange?.();
      if (stopping) {
        // The page read ahead is dropped (nothing of it was written); nothing is left running after stop().
        await next?.catch(() => undefined);
        // Given back, still running: another runner (or this one after the restart) resumes after the cursor.
        await jobs.giveBack(lease);
        return;
      }
    }
    await jobs.finish(lease, deps.clock.now());
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
 * Reads a job's pages after its cursor, the last pass id done (keyset on ids). For a template, each page is the next
 * passes of the selection by id. For a list of serials, the ids they name are read once, when the job is claimed, and
 * each page asks for its own 100 ids: matching the passes against the whole list on every page cost PostgreSQL
 * 0.4 s a page for a list of 100,000 (EXPLAIN ANALYZE, bench/RESULTS.md). Either way the cursor means the same, so a
 * job can move between instances of different versions.
 */
async function pageReader(
  selection: BulkSelection,
  reads: SelectionReads,
  options: PageOptions,
  pageSize: number,
): Promise<{
  read(after: bigint): Promise<Page | undefined>;
  /** How many passes a list of serials names, known from its ids; undefined for a template, not read whole. */
  matched?: number;
}> {
  if (!('serialNumbers' in selection))
    return { read: (after) => readPage(options, reads.page, after, pageSize) };
  const ids = await reads.ids();
  const byIds = options.deps.repositories.bulkJobs.passesByIds;
  const read = async (after: bigint) => {
    const from = firstAfter(ids, after);
    const pageIds = ids.slice(from, from + pageSize);
    const last = pageIds.at(-1);
    if (last === undefined) return undefined;
    const page = await readPage(options, (from, limit) => byIds(pageIds, from, limit), after, pageSize);
    // Passes deleted since the ids were read are not in the page; the cursor still moves past them.
    return page ?? { passes: [], lastId: last };
  };
  return { read, matched: ids.length };
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
