/*
 * The data seam: every statement the server runs, grouped by what it is about. Services take these (or the few
 * they need), never a client: whether a statement goes through Prisma or straight to the driver is decided here.
 */
import {
  type BulkJobsInTransaction,
  type BulkJobsRepository,
  bulkJobsInTransaction,
  createBulkJobsRepository,
} from './bulk-jobs.js';
import { createDeviceLogsRepository, type DeviceLogsRepository } from './device-logs.js';
import { createHealthRepository, type HealthRepository } from './health.js';
import {
  createOutboxRepository,
  type OutboxEnqueue,
  type OutboxRepository,
  outboxEnqueueOn,
} from './outbox.js';
import {
  createPassesRepository,
  type PassesInTransaction,
  type PassesRepository,
  passesInTransaction,
} from './passes.js';
import { createRegistrationsRepository, type RegistrationsRepository } from './registrations.js';
import type { PreparedStatement, PrismaClient, SqlQuery } from './sql.js';

/** The statements that run inside one transaction: a change, its bundles and its outbox rows commit together. */
export interface TransactionRepositories {
  passes: PassesInTransaction;
  outbox: OutboxEnqueue;
  bulkJobs: BulkJobsInTransaction;
}

export interface TransactionOptions {
  /**
   * Longest the transaction may take: no statement runs longer than what is left (statement_timeout, which covers
   * lock waits), none starts once it is past, and the transaction then rolls back.
   */
  timeoutMs?: number;
}

export interface Repositories {
  passes: PassesRepository;
  registrations: RegistrationsRepository;
  outbox: OutboxRepository;
  bulkJobs: BulkJobsRepository;
  deviceLogs: DeviceLogsRepository;
  health: HealthRepository;
  /** Runs `run` in one transaction: committed when it resolves, rolled back when it throws. */
  inTransaction<T>(
    run: (tx: TransactionRepositories) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T>;
}

/** What the repositories are made of: Prisma, the driver, and the driver's transactions. */
export interface RepositoryHandles {
  prisma: PrismaClient;
  query: SqlQuery;
  transaction<T>(run: (query: SqlQuery) => Promise<T>): Promise<T>;
}

export function createRepositories(db: RepositoryHandles): Repositories {
  return {
    passes: createPassesRepository(db),
    registrations: createRegistrationsRepository(db),
    outbox: createOutboxRepository(db),
    bulkJobs: createBulkJobsRepository(db),
    deviceLogs: createDeviceLogsRepository(db),
    health: createHealthRepository(db),
    // The driver's transaction, not Prisma's: Prisma's raw parameters cost most of a bulk page's time for its
    // bundles (bytea as base64 inside JSON, bench/RESULTS.md), pg sends them as they are.
    inTransaction: (run, options = {}) =>
      db.transaction(async (driverQuery) => {
        const query =
          options.timeoutMs === undefined ? driverQuery : await bounded(driverQuery, options.timeoutMs);
        return run({
          passes: passesInTransaction(query),
          outbox: outboxEnqueueOn(query),
          bulkJobs: bulkJobsInTransaction(query),
        });
      }),
  };
}

/** The transaction's query, bounded in time (TransactionOptions.timeoutMs), so a runaway transaction still ends. */
async function bounded(query: SqlQuery, timeoutMs: number): Promise<SqlQuery> {
  const deadline = Date.now() + timeoutMs;
  // For this transaction only (set_config's third argument).
  await query("SELECT set_config('statement_timeout', $1, true)", [String(timeoutMs)]);
  return async <Row extends Record<string, unknown>>(sql: string | PreparedStatement, params: unknown[]) => {
    if (Date.now() > deadline) throw new Error(`transaction took longer than ${timeoutMs} ms`);
    return query<Row>(sql, params);
  };
}
