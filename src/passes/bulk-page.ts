/*
 * One page of a bulk job, set-based. The page's passes are read in one query without locks, and the change is
 * merged, checked and signed for each of them (in the signing pool, outside any transaction). Then one short
 * transaction locks the page's rows, re-signs the few that a concurrent PATCH changed since the read, and writes
 * the page with one statement per table (new versions, bundles, outbox rows) together with the job's cursor,
 * counts and lease: a crash commits the whole page with its cursor, or nothing of it, so no pass is changed twice.
 */
import type { Database, PreparedStatement, SqlQuery } from '../db/database.js';
import { Prisma } from '../db/generated/client.js';
import type { ChangeMessages, FieldValues, PassOverrides } from './pass-content.js';
import {
  enqueuePushes,
  type PassChange,
  type PassesDeps,
  type SignedChange,
  signChange,
  storeBundles,
  writeNewVersions,
} from './passes.js';

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

interface PassRow {
  id: bigint;
  pass_type_identifier: string;
  serial_number: string;
  authentication_token: string;
  template: string;
  fields: Prisma.JsonValue;
  overrides: Prisma.JsonValue;
  change_messages: Prisma.JsonValue;
  version: number;
}

// Without the id, which the driver's read casts to text (each driver gives int8 as a type of its own).
const OTHER_COLUMNS = `p.pass_type_identifier, p.serial_number, p.authentication_token, p.template,
  p.fields, p.overrides, p.change_messages, p.version`;
const PASS_COLUMNS = Prisma.raw(`p.id, ${OTHER_COLUMNS}`);

/** The next page after `after` (keyset on id, so every page costs the same), merged and signed; undefined at the end. */
export async function readPage(
  options: PageOptions,
  where: Prisma.Sql,
  after: bigint,
  pageSize: number,
): Promise<Page | undefined> {
  const rows = await options.deps.prisma.$queryRaw<PassRow[]>`
    SELECT ${PASS_COLUMNS} FROM passes p
    WHERE ${where} AND p.id > ${after}
    ORDER BY p.id LIMIT ${pageSize}`;
  const last = rows.at(-1);
  if (!last) return undefined;
  return { passes: await prepare(options, rows), lastId: last.id };
}

/** Merges, checks and signs each pass: one that fails carries its message and is counted failed, as PATCH would refuse it. */
async function prepare(options: PageOptions, rows: PassRow[]): Promise<PagePass[]> {
  const prepared = new Array<PagePass>(rows.length);
  await forEachConcurrently(rows, options.concurrency, async (row, index) => {
    const pass = {
      passTypeIdentifier: row.pass_type_identifier,
      serialNumber: row.serial_number,
      authenticationToken: row.authentication_token,
      template: row.template,
      fields: row.fields as FieldValues,
      overrides: row.overrides as PassOverrides,
      changeMessages: row.change_messages as ChangeMessages,
    };
    let outcome: PagePass['outcome'];
    try {
      outcome = { ok: true, change: await signChange(options.deps, pass, options.change) };
    } catch (error) {
      outcome = { ok: false, message: messageOf(error) };
    }
    prepared[index] = {
      id: row.id,
      passTypeIdentifier: row.pass_type_identifier,
      serialNumber: row.serial_number,
      version: row.version,
      outcome,
    };
  });
  return prepared;
}

// A type, not an interface: the admin answer's loose-object schema needs an index-signature-compatible type.
export type BulkError = {
  serialNumber: string | null;
  message: string;
};

export interface JobLease {
  jobId: string;
  /** lease_until as this runner last wrote it: the job is still ours only while the row still says so. */
  lease: Date;
  leaseMs: number;
}

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
 * The transaction is the driver's (Database.transaction), not Prisma's: Prisma's raw parameters cost most of a
 * page's time for its bundles (bench/RESULTS.md).
 */
export async function commitPage(
  options: PageOptions & { transactionTimeoutMs: number; database: Pick<Database, 'transaction'> },
  page: Page,
  job: JobLease,
  errors: readonly BulkError[],
): Promise<PageResult> {
  const { deps } = options;
  return options.database.transaction(async (driverQuery) => {
    // Bounded as Prisma's transaction timeout bounded it, so a runaway page still ends (and is retried): no
    // statement runs longer than the page may take (statement_timeout, for this transaction only; it covers lock
    // waits), and none starts once that time is past.
    const deadline = Date.now() + options.transactionTimeoutMs;
    await driverQuery("SELECT set_config('statement_timeout', $1, true)", [
      String(options.transactionTimeoutMs),
    ]);
    const query: SqlQuery = async <Row extends Record<string, unknown>>(
      sql: string | PreparedStatement,
      params: unknown[],
    ) => {
      if (Date.now() > deadline)
        throw new Error(`bulk page transaction took longer than ${options.transactionTimeoutMs} ms`);
      return driverQuery<Row>(sql, params);
    };
    const ids = page.passes.map((pass) => pass.id.toString());
    const locked = await query<{ id: string; version: number }>(
      'SELECT id::text AS id, version FROM passes WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE',
      [ids],
    );
    const lockedVersions = new Map(locked.map((row) => [BigInt(row.id), row.version]));
    const staleIds = page.passes
      .filter((pass) => {
        const version = lockedVersions.get(pass.id);
        return version !== undefined && version !== pass.version;
      })
      .map((pass) => pass.id.toString());
    if (staleIds.length > 0) {
      const rows = await query<Omit<PassRow, 'id'> & { id: string }>(
        `SELECT p.id::text AS id, ${OTHER_COLUMNS} FROM passes p WHERE p.id = ANY($1::bigint[])`,
        [staleIds],
      );
      const again = new Map(
        (
          await prepare(
            options,
            rows.map((row) => ({ ...row, id: BigInt(row.id) })),
          )
        ).map((pass) => [pass.id, pass]),
      );
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
      const written = await writeNewVersions(
        query,
        changed.map((pass) => ({ id: pass.id, ...pass.change })),
        now,
      );
      const versions = new Map(written.map((row) => [row.id, row.version]));
      // Locked rows at the version signed: each is now exactly one version further (the bundle says which).
      for (const pass of changed) {
        if (versions.get(pass.id) !== pass.version + 1)
          throw new Error(`pass ${pass.id} is not at version ${pass.version + 1} after the bulk change`);
      }
      await storeBundles(
        query,
        changed.map((pass) => ({ passId: pass.id, version: pass.version + 1, bytes: pass.change.bytes })),
        now,
      );
      // One statement per pass type (a page usually holds one): enqueuePushes' rule, for the whole page.
      const byType = new Map<string, bigint[]>();
      for (const pass of changed) {
        const group = byType.get(pass.passTypeIdentifier) ?? [];
        group.push(pass.id);
        byType.set(pass.passTypeIdentifier, group);
      }
      for (const [passTypeIdentifier, passIds] of byType)
        await enqueuePushes(query, passIds, passTypeIdentifier, now);
    }
    const allErrors = [...errors, ...pageErrors].slice(0, MAX_ERRORS);
    const lease = await saveProgress(query, job, deps.clock.now(), {
      cursor: page.lastId,
      done: changed.length,
      failed: pageErrors.length,
      errors: allErrors,
    });
    return { done: changed.length, failed: pageErrors.length, errors: allErrors, lease };
  });
}

/**
 * Saves the job's progress and renews its lease; throws LeaseLostError (rolling back the page it commits with)
 * when another runner has claimed the job since, so a page is never written by two runners.
 */
export async function saveProgress(
  query: SqlQuery,
  job: JobLease,
  now: Date,
  progress: { cursor: bigint; done: number; failed: number; errors: BulkError[]; matched?: number },
): Promise<Date> {
  const renewed = new Date(now.getTime() + job.leaseMs);
  const saved = await query(
    `UPDATE bulk_jobs SET
      cursor = $1::bigint, done = done + $2::int, failed = failed + $3::int,
      errors = $4::jsonb,
      matched = COALESCE($5::int, matched),
      lease_until = $6::timestamptz
    WHERE id = $7::uuid AND status = 'running' AND lease_until = $8::timestamptz
    RETURNING 1`,
    [
      progress.cursor.toString(),
      progress.done,
      progress.failed,
      JSON.stringify(progress.errors),
      progress.matched ?? null,
      renewed,
      job.jobId,
      job.lease,
    ],
  );
  if (saved.length === 0) throw new LeaseLostError(job.jobId);
  return renewed;
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
