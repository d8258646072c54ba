/*
 * Bulk jobs (POST /admin/passes/bulk) and the reads of their selection. A job is claimed with FOR UPDATE SKIP LOCKED
 * and a lease, as the push outbox is; every write after the claim matches the lease it was given, so a runner whose
 * lease ran out writes nothing. A page's progress commits in the page's transaction (BulkJobsInTransaction).
 */
import { randomUUID } from 'node:crypto';
import { Prisma } from './generated/client.js';
import {
  CONTENT_COLUMNS,
  type ContentRow,
  contentFromRow,
  type JsonObject,
  type PassContentRecord,
} from './passes.js';
import type { PrismaClient, SqlQuery } from './sql.js';

/** Which passes a job changes: a list of serial numbers (of this server's pass type), or a template's passes. */
export type BulkJobSelection =
  | { passTypeIdentifier?: string | undefined; serialNumbers: string[] }
  | { template: string; fields?: JsonObject | undefined };

// A type, not an interface: the admin answer's loose-object schema needs an index-signature-compatible type.
export type BulkJobError = {
  serialNumber: string | null;
  message: string;
};

export interface BulkJobRecord {
  id: string;
  /** As stored by create(): the service's own selection and change. */
  selection: unknown;
  change: unknown;
  status: string;
  /** The last pass id done. */
  cursor: bigint;
  matched: number | null;
  done: number;
  failed: number;
  errors: BulkJobError[];
  leaseUntil: Date | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface BulkJobProgress {
  cursor: bigint;
  /** Added to the job's counts. */
  done: number;
  failed: number;
  /** Replace the job's errors. */
  errors: BulkJobError[];
  matched?: number;
}

export interface JobLease {
  jobId: string;
  /** lease_until as this runner last wrote it: the job is still ours only while the row still says so. */
  lease: Date;
  leaseMs: number;
}

export interface BulkJobsInTransaction {
  /**
   * Saves the job's progress and renews its lease, returning the new lease; undefined when another runner has
   * claimed the job since (the caller rolls back), so a page is never written by two runners.
   */
  saveProgress(job: JobLease, now: Date, progress: BulkJobProgress): Promise<Date | undefined>;
}

/** The passes a job's selection matches, in id order. */
export interface SelectionReads {
  /** Every id the selection matches (for a list of serials, read once per claim). */
  ids(): Promise<bigint[]>;
  count(): Promise<number>;
  /** The next `limit` passes after the id `after` (keyset, so every page costs the same). */
  page(after: bigint, limit: number): Promise<PassContentRecord[]>;
  /** The serial numbers of a list that name no pass. */
  missingSerials(): Promise<string[]>;
}

export interface BulkJobsRepository extends BulkJobsInTransaction {
  create(selection: BulkJobSelection, change: JsonObject): Promise<BulkJobRecord>;
  find(jobId: string): Promise<BulkJobRecord | undefined>;
  /**
   * The oldest job that is queued, or running with a lease that ran out (its runner died) or was given back, now
   * running under a new lease.
   */
  claim(now: Date, leaseMs: number): Promise<BulkJobRecord | undefined>;
  /** The job failed (while still running); `errors` are added to its errors. */
  fail(jobId: string, now: Date, errors: BulkJobError[]): Promise<void>;
  /** Done, if the lease still holds. */
  finish(job: Pick<JobLease, 'jobId' | 'lease'>, now: Date): Promise<void>;
  /** Given back, still running, if the lease still holds: claimable at once. */
  giveBack(job: Pick<JobLease, 'jobId' | 'lease'>): Promise<void>;
  /** Serials without a passTypeIdentifier of their own are of `primaryPassType` (the primary identity's). */
  selection(jobId: string, selection: BulkJobSelection, primaryPassType: string): SelectionReads;
  /** What a job with this selection would change, without making it: passes matched, and devices registered for them. */
  preview(selection: BulkJobSelection, primaryPassType: string): Promise<{ passes: number; devices: number }>;
  /** Of the given ids, the next `limit` passes after the id `after`. */
  passesByIds(ids: readonly bigint[], after: bigint, limit: number): Promise<PassContentRecord[]>;
}

interface JobRow {
  id: string;
  selection: unknown;
  change: unknown;
  status: string;
  cursor: bigint;
  matched: number | null;
  done: number;
  failed: number;
  errors: BulkJobError[];
  lease_until: Date | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

const fromRow = (row: JobRow): BulkJobRecord => ({
  id: row.id,
  selection: row.selection,
  change: row.change,
  status: row.status,
  cursor: row.cursor,
  matched: row.matched,
  done: row.done,
  failed: row.failed,
  errors: row.errors,
  leaseUntil: row.lease_until,
  createdAt: row.created_at,
  startedAt: row.started_at,
  finishedAt: row.finished_at,
});

export function bulkJobsInTransaction(query: SqlQuery): BulkJobsInTransaction {
  return {
    async saveProgress(job, now, progress) {
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
      return saved.length === 0 ? undefined : renewed;
    },
  };
}

/**
 * The SQL condition on passes `p` for a selection; a list of serials is read by `serials` (a query of them). Field
 * values are strings or numbers, so containment (@>) of { key: value } is equality of each given key's value,
 * compared as JSON: 10 matches 10, not "10".
 */
function selectionSql(selection: BulkJobSelection, primaryPassType: string, serials: Prisma.Sql): Prisma.Sql {
  if ('serialNumbers' in selection) {
    const passTypeIdentifier = selection.passTypeIdentifier ?? primaryPassType;
    return Prisma.sql`p.pass_type_identifier = ${passTypeIdentifier} AND p.serial_number IN (${serials})`;
  }
  return Prisma.sql`p.template = ${selection.template} AND p.fields @> ${JSON.stringify(selection.fields ?? {})}::jsonb`;
}

/** A job's serials from its own row, so that a list of 100k serials is not sent with every query. */
const jobSerials = (jobId: string) =>
  Prisma.sql`SELECT jsonb_array_elements_text(j.selection -> 'serialNumbers') FROM bulk_jobs j WHERE j.id = ${jobId}::uuid`;

export function createBulkJobsRepository(db: { prisma: PrismaClient; query: SqlQuery }): BulkJobsRepository {
  const { prisma } = db;
  const columns = Prisma.raw(CONTENT_COLUMNS);
  const readPage = async (where: Prisma.Sql, after: bigint, limit: number) => {
    const rows = await prisma.$queryRaw<ContentRow[]>`
      SELECT ${columns} FROM passes p
      WHERE ${where} AND p.id > ${after}
      ORDER BY p.id LIMIT ${limit}`;
    return rows.map(contentFromRow);
  };
  return {
    ...bulkJobsInTransaction(db.query),
    async create(selection, change) {
      const [row] = await prisma.$queryRaw<JobRow[]>`
        INSERT INTO bulk_jobs (id, selection, change)
        VALUES (${randomUUID()}::uuid, ${JSON.stringify(selection)}::jsonb, ${JSON.stringify(change)}::jsonb)
        RETURNING *`;
      if (!row) throw new Error('INSERT … RETURNING gave no row');
      return fromRow(row);
    },
    async find(jobId) {
      const [row] = await prisma.$queryRaw<JobRow[]>`SELECT * FROM bulk_jobs WHERE id = ${jobId}::uuid`;
      return row ? fromRow(row) : undefined;
    },
    // SKIP LOCKED: runners of several instances claim at once without waiting for each other or taking the same job.
    async claim(now, leaseMs) {
      const leaseUntil = new Date(now.getTime() + leaseMs);
      const [row] = await prisma.$queryRaw<JobRow[]>`
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
      return row ? fromRow(row) : undefined;
    },
    async fail(jobId, now, errors) {
      await prisma.$executeRaw`
        UPDATE bulk_jobs SET status = 'failed', finished_at = ${now}::timestamptz, lease_until = NULL,
          errors = errors || ${JSON.stringify(errors)}::jsonb
        WHERE id = ${jobId}::uuid AND status = 'running'`;
    },
    async finish(job, now) {
      await prisma.$executeRaw`
        UPDATE bulk_jobs SET status = 'done', finished_at = ${now}::timestamptz, lease_until = NULL
        WHERE id = ${job.jobId}::uuid AND lease_until = ${job.lease}::timestamptz`;
    },
    async giveBack(job) {
      await prisma.$executeRaw`
        UPDATE bulk_jobs SET lease_until = NULL
        WHERE id = ${job.jobId}::uuid AND lease_until = ${job.lease}::timestamptz`;
    },
    selection(jobId, selection, primaryPassType) {
      const where = selectionSql(selection, primaryPassType, jobSerials(jobId));
      return {
        async ids() {
          const rows = await prisma.$queryRaw<Array<{ id: bigint }>>`
            SELECT p.id FROM passes p WHERE ${where} ORDER BY p.id`;
          return rows.map((row) => row.id);
        },
        async count() {
          const [counted] = await prisma.$queryRaw<Array<{ matched: number }>>`
            SELECT count(*)::int AS matched FROM passes p WHERE ${where}`;
          return counted?.matched ?? 0;
        },
        page: (after, limit) => readPage(where, after, limit),
        async missingSerials() {
          if (!('serialNumbers' in selection)) return [];
          const passTypeIdentifier = selection.passTypeIdentifier ?? primaryPassType;
          const rows = await prisma.$queryRaw<Array<{ serial: string }>>`
            SELECT s.serial FROM bulk_jobs j, jsonb_array_elements_text(j.selection -> 'serialNumbers') AS s(serial)
            WHERE j.id = ${jobId}::uuid AND NOT EXISTS (
              SELECT 1 FROM passes p
              WHERE p.pass_type_identifier = ${passTypeIdentifier} AND p.serial_number = s.serial)`;
          return rows.map((row) => row.serial);
        },
      };
    },
    async preview(selection, primaryPassType) {
      // The serials go as one array parameter here: there is no job row to read them from.
      const serials = 'serialNumbers' in selection ? selection.serialNumbers : [];
      const where = selectionSql(selection, primaryPassType, Prisma.sql`SELECT unnest(${serials}::text[])`);
      const [row] = await prisma.$queryRaw<Array<{ passes: number; devices: number }>>`
        SELECT (SELECT count(*)::int FROM passes p WHERE ${where}) AS passes,
          (SELECT count(DISTINCT r.device_id)::int FROM registrations r JOIN passes p ON p.id = r.pass_id
            WHERE ${where}) AS devices`;
      return { passes: row?.passes ?? 0, devices: row?.devices ?? 0 };
    },
    passesByIds: (ids, after, limit) =>
      readPage(Prisma.sql`p.id = ANY(${ids.map(String)}::bigint[])`, after, limit),
  };
}
