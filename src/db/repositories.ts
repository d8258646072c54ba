/*
 * The data seam: every statement the server runs, grouped by what it is about. Services take these (or the few
 * they need), never a client: whether a statement goes through Prisma or straight to the driver is decided here.
 */

import { ServiceUnavailableError } from '../errors.js';
import {
  type BulkJobsInTransaction,
  type BulkJobsRepository,
  bulkJobsInTransaction,
  createBulkJobsRepository,
} from './bulk-jobs.js';
import { createDeviceLogsRepository, type DeviceLogsRepository } from './device-logs.js';
import { createHealthRepository, type HealthRepository } from './health.js';
import { createIdentitiesRepository, type IdentitiesRepository } from './identities.js';
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
import {
  createTemplatesRepository,
  type TemplateReader,
  type TemplatesRepository,
  templateReaderOn,
} from './templates.js';

/** The statements that run inside one transaction: a change, its bundles and its outbox rows commit together. */
export interface TransactionRepositories {
  passes: PassesInTransaction;
  outbox: OutboxEnqueue;
  bulkJobs: BulkJobsInTransaction;
  /** Template versions this instance has not read yet are read inside the transaction, on its connection. */
  templates: TemplateReader;
}

export interface TransactionOptions {
  /**
   * Longest the transaction may take, counted from when it is asked for: waiting for a connection (or, on PGlite,
   * for the transaction before it), lock waits and statements. No statement runs longer than what is left
   * (statement_timeout, which covers lock waits), none starts once it is past; the transaction then rolls back and
   * ServiceUnavailableError (503, Retry-After) is thrown, so the client may send its unchanged request again.
   */
  timeoutMs?: number;
  /**
   * Transactions with the same key run one at a time in this process, in the order asked for, each waiting for its
   * turn before it asks for a transaction: a wait holds no connection (PGlite has one for everything) and no lock,
   * and is not counted in timeoutMs. Across processes the row locks still order them. After maxWaitMs without its
   * turn, ServiceUnavailableError is thrown and nothing runs.
   */
  queue?: { key: string; maxWaitMs: number };
}

/** What a client is asked to wait before sending a request that could not be taken in time again. */
export const RETRY_AFTER_SECONDS = 2;

export interface Repositories {
  passes: PassesRepository;
  registrations: RegistrationsRepository;
  outbox: OutboxRepository;
  bulkJobs: BulkJobsRepository;
  deviceLogs: DeviceLogsRepository;
  identities: IdentitiesRepository;
  templates: TemplatesRepository;
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
  const inTurn = turnsByKey();
  // The driver's transaction, not Prisma's: Prisma's raw parameters cost most of a bulk page's time for its
  // bundles (bytea as base64 inside JSON, bench/RESULTS.md), pg sends them as they are.
  const transaction = async <T>(
    run: (tx: TransactionRepositories) => Promise<T>,
    timeoutMs: number | undefined,
  ): Promise<T> => {
    const inside = (query: SqlQuery) =>
      run({
        passes: passesInTransaction(query),
        outbox: outboxEnqueueOn(query),
        bulkJobs: bulkJobsInTransaction(query),
        templates: templateReaderOn(query),
      });
    if (timeoutMs === undefined) return db.transaction(inside);
    const deadline = Date.now() + timeoutMs;
    // Waiting to start (a free pool connection; PGlite's turn) is refused at the deadline; once started, the
    // transaction is ended by its own bounds only, so an answer never says "not changed" for a commit in flight.
    let started = false;
    let abandoned = false;
    let timer: NodeJS.Timeout | undefined;
    const notStarted = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (started) return;
        abandoned = true;
        reject(notTakenInTime(`no transaction could be started within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    const running = db.transaction(async (driverQuery) => {
      started = true;
      // Its caller was answered already: rolled back at once.
      if (abandoned) throw new DeadlineError('the transaction started after its caller gave up');
      return inside(await bounded(driverQuery, deadline));
    });
    try {
      return await Promise.race([running, notStarted]);
    } catch (error) {
      if (endedByTimeout(error))
        throw notTakenInTime(`the change was not done within ${timeoutMs} ms`, error);
      throw error;
    } finally {
      clearTimeout(timer);
      // An abandoned transaction still ends (rolled back) after its caller was answered.
      running.catch(() => undefined);
    }
  };
  return {
    passes: createPassesRepository(db),
    registrations: createRegistrationsRepository(db),
    outbox: createOutboxRepository(db),
    bulkJobs: createBulkJobsRepository(db),
    deviceLogs: createDeviceLogsRepository(db),
    identities: createIdentitiesRepository(db),
    templates: createTemplatesRepository(db),
    health: createHealthRepository(db),
    inTransaction: (run, options = {}) => {
      const { queue, timeoutMs } = options;
      if (!queue) return transaction(run, timeoutMs);
      return inTurn(queue.key, queue.maxWaitMs, () => transaction(run, timeoutMs));
    },
  };
}

function notTakenInTime(reason: string, cause?: unknown): ServiceUnavailableError {
  const error = new ServiceUnavailableError(
    `Busy: ${reason}; nothing was changed, retry in ${RETRY_AFTER_SECONDS} s`,
    RETRY_AFTER_SECONDS,
  );
  if (cause !== undefined) error.cause = cause;
  return error;
}

/** The deadline passed: our own check (DeadlineError), or PostgreSQL's statement_timeout (57014 query_canceled). */
function endedByTimeout(error: unknown): boolean {
  if (error instanceof DeadlineError) return true;
  return typeof error === 'object' && error !== null && 'code' in error && error.code === '57014';
}

class DeadlineError extends Error {}

/** The transaction's query, bounded by the deadline (TransactionOptions.timeoutMs), so a runaway transaction still ends. */
async function bounded(query: SqlQuery, deadline: number): Promise<SqlQuery> {
  const left = () => deadline - Date.now();
  if (left() <= 0) throw new DeadlineError('the transaction started after its deadline');
  // For this transaction only (set_config's third argument).
  await query("SELECT set_config('statement_timeout', $1, true)", [String(Math.max(1, left()))]);
  return async <Row extends Record<string, unknown>>(sql: string | PreparedStatement, params: unknown[]) => {
    if (left() <= 0) throw new DeadlineError('the transaction passed its deadline');
    return query<Row>(sql, params);
  };
}

/**
 * Runs tasks of one key one at a time, in the order they came; a task that waits longer than maxWaitMs for its turn
 * is refused (ServiceUnavailableError) and the next waits for the one before it. Keys are forgotten when idle.
 */
function turnsByKey() {
  const tails = new Map<string, Promise<void>>();
  return async <T>(key: string, maxWaitMs: number, task: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    let done = () => {};
    const own = new Promise<void>((resolve) => {
      done = resolve;
    });
    // The next task's turn comes once this one and every one before it have ended (a refused one ends at once).
    const tail = previous.then(() => own);
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    try {
      let timer: NodeJS.Timeout | undefined;
      const waited = await Promise.race([
        previous.then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), maxWaitMs);
        }),
      ]);
      clearTimeout(timer);
      if (!waited) throw notTakenInTime(`other changes of ${key} kept this one waiting over ${maxWaitMs} ms`);
      return await task();
    } finally {
      done();
    }
  };
}
