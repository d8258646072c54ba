/*
 * One page of a bulk job, set-based. The page's passes are read in one query without locks, and the change is
 * merged, checked and signed for each of them (in the signing pool, outside any transaction). Then one short
 * transaction locks the page's rows, re-signs the few that a concurrent PATCH changed since the read, and writes
 * the page with one statement per table (new versions, bundles, outbox rows) together with the job's cursor,
 * counts and lease: a crash commits the whole page with its cursor, or nothing of it, so no pass is changed twice.
 */
import type { BulkJobError, JobLease } from '../db/bulk-jobs.js';
import type { ImageFiles, PassContentRecord } from '../db/passes.js';
import {
  contentOf,
  type InTransaction,
  type PassChange,
  type PassesDeps,
  type SignedChange,
  signChange,
} from './passes.js';

export type { JobLease };

/** Only the first few failures are kept: a change that fails for every pass must not grow the row to 100k entries. */
export const MAX_ERRORS = 20;

/** A pass of a page, with what the change makes of it. */
export interface PagePass {
  id: bigint;
  passTypeIdentifier: string;
  serialNumber: string;
  /** The version the change was merged into: written only if the pass is still at it once locked. */
  version: number;
  outcome: { ok: true; change: SignedChange } | { ok: false; message: string };
}

export interface Page {
  passes: PagePass[];
  /** The cursor once this page has committed. */
  lastId: bigint;
}

export interface PageOptions {
  deps: PassesDeps;
  change: PassChange;
  /** Passes signed at once; the pool queues the rest anyway, this bounds the bundles held while waiting. */
  concurrency: number;
}

/**
 * The next page after `after`, merged and signed; undefined at the end. `read` gives the page's passes (keyset on
 * id, so every page costs the same).
 */
export async function readPage(
  options: PageOptions,
  read: (after: bigint, limit: number) => Promise<PassContentRecord[]>,
  after: bigint,
  pageSize: number,
): Promise<Page | undefined> {
  const rows = await read(after, pageSize);
  const last = rows.at(-1);
  if (!last) return undefined;
  const images = await options.deps.repositories.passes.readImages(rows.map((row) => row.id));
  return { passes: await prepare(options, rows, images), lastId: last.id };
}

/** Merges, checks and signs each pass: one that fails carries its message and is counted failed, as PATCH would refuse it. */
async function prepare(
  options: PageOptions,
  rows: readonly PassContentRecord[],
  images: ReadonlyMap<bigint, ImageFiles>,
  within?: InTransaction,
): Promise<PagePass[]> {
  const prepared = new Array<PagePass>(rows.length);
  await forEachConcurrently(rows, options.concurrency, async (row, index) => {
    let outcome: PagePass['outcome'];
    try {
      const pass = { ...contentOf(row), images: images.get(row.id) ?? {} };
      outcome = { ok: true, change: await signChange(options.deps, pass, options.change, within) };
    } catch (error) {
      outcome = { ok: false, message: messageOf(error) };
    }
    prepared[index] = {
      id: row.id,
      passTypeIdentifier: row.passTypeIdentifier,
      serialNumber: row.serialNumber,
      version: row.version,
      outcome,
    };
  });
  return prepared;
}

export type BulkError = BulkJobError;

export interface PageResult {
  done: number;
  failed: number;
  /** The job's errors with this page's added (at most MAX_ERRORS). */
  errors: BulkError[];
  lease: Date;
}

/**
 * Writes a page in one transaction. Rows are locked in id order (two jobs over the same passes cannot deadlock).
 * A pass whose version moved since the read (a PATCH committed meanwhile) is read again under the lock and merged
 * and signed again, so no bundle is built from stale fields; page.passes is updated with it, so a retry of the
 * transaction does not sign it a third time. A pass deleted since the read is counted failed, as PATCH would 404.
 * The transaction is bounded (transactionTimeoutMs), so a runaway page still ends and is retried.
 */
export async function commitPage(
  options: PageOptions & { transactionTimeoutMs: number },
  page: Page,
  job: JobLease,
  errors: readonly BulkError[],
): Promise<PageResult> {
  const { deps } = options;
  return deps.repositories.inTransaction(
    async (tx) => {
      const lockedVersions = await tx.passes.lockVersions(page.passes.map((pass) => pass.id));
      const staleIds = page.passes
        .filter((pass) => {
          const version = lockedVersions.get(pass.id);
          return version !== undefined && version !== pass.version;
        })
        .map((pass) => pass.id);
      if (staleIds.length > 0) {
        const contents = await tx.passes.readContents(staleIds);
        const images = await tx.passes.readImages(staleIds);
        const prepared = await prepare(options, contents, images, tx);
        const again = new Map(prepared.map((pass) => [pass.id, pass]));
        page.passes = page.passes.map((pass) => again.get(pass.id) ?? pass);
      }

      const now = deps.clock.now();
      const changed: Array<PagePass & { change: SignedChange }> = [];
      const pageErrors: BulkError[] = [];
      for (const pass of page.passes) {
        if (!lockedVersions.has(pass.id)) {
          pageErrors.push({
            serialNumber: pass.serialNumber,
            message: `No pass ${pass.passTypeIdentifier}/${pass.serialNumber}`,
          });
        } else if (pass.outcome.ok) {
          changed.push({ ...pass, change: pass.outcome.change });
        } else {
          pageErrors.push({ serialNumber: pass.serialNumber, message: pass.outcome.message });
        }
      }
      if (changed.length > 0) {
        const written = await tx.passes.writeNewVersions(
          changed.map((pass) => ({ id: pass.id, ...pass.change })),
          now,
        );
        const versions = new Map(written.map((row) => [row.id, row.version]));
        // Locked rows at the version signed: each is now exactly one version further (the bundle says which).
        for (const pass of changed) {
          if (versions.get(pass.id) !== pass.version + 1)
            throw new Error(`pass ${pass.id} is not at version ${pass.version + 1} after the bulk change`);
        }
        await tx.passes.storeBundles(
          changed.map((pass) => ({ passId: pass.id, version: pass.version + 1, bytes: pass.change.bytes })),
          now,
        );
        // One statement per pass type (a page usually holds one): the outbox's rule, for the whole page.
        const byType = new Map<string, bigint[]>();
        for (const pass of changed) {
          const group = byType.get(pass.passTypeIdentifier) ?? [];
          group.push(pass.id);
          byType.set(pass.passTypeIdentifier, group);
        }
        for (const [passTypeIdentifier, passIds] of byType)
          await tx.outbox.enqueue(passIds, passTypeIdentifier, now);
      }
      const allErrors = [...errors, ...pageErrors].slice(0, MAX_ERRORS);
      const lease = await tx.bulkJobs.saveProgress(job, deps.clock.now(), {
        cursor: page.lastId,
        done: changed.length,
        failed: pageErrors.length,
        errors: allErrors,
      });
      // Rolls the page back: another runner has the job.
      if (!lease) throw new LeaseLostError(job.jobId);
      return { done: changed.length, failed: pageErrors.length, errors: allErrors, lease };
    },
    { timeoutMs: options.transactionTimeoutMs },
  );
}

/** Another runner claimed the job after this one's lease ran out: this one stops quietly, without failing the job. */
export class LeaseLostError extends Error {
  constructor(jobId: string) {
    super(`lease on bulk job ${jobId} lost`);
  }
}

async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  run: (item: T, index: number) => Promise<void>,
) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      await run(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, concurrency), items.length) }, lane));
}

export function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 500);
}
