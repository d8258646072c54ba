import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import pg from 'pg';
import type { Logger } from '../logger.js';
import { PrismaClient } from './generated/client.js';
import { applyMigrations } from './migrations.js';
import {
  createPassChanges,
  embeddedNotificationSession,
  type PassChanges,
  postgresNotificationSession,
} from './pass-changes.js';
import { PGliteAdapterFactory, pgliteQueryOptions } from './pglite.js';
import { PostgresMigrationAdapterFactory } from './postgres.js';
import { createRepositories, type Repositories } from './repositories.js';
import { type PreparedStatement, type SqlQuery, sqlText } from './sql.js';

export type { PreparedStatement, PrismaClient, SqlQuery };
export type DatabaseKind = 'postgresql' | 'embedded';

export interface Database {
  /** Every statement the server runs (src/db/repositories.ts): what services and routes are given. */
  repositories: Repositories;
  /** The clients under the repositories: for src/db/ and for test fixtures that write rows directly. */
  prisma: PrismaClient;
  query: SqlQuery;
  kind: DatabaseKind;
  /**
   * Runs `run` in one transaction on one connection of the driver, with the same SqlQuery: committed when it
   * resolves, rolled back when it throws. Under Repositories.inTransaction. PGlite runs one transaction at a time:
   * its other queries (Prisma's too) wait until this one ends.
   */
  transaction<T>(run: (query: SqlQuery) => Promise<T>): Promise<T>;
  /** Word of changed passes (src/db/pass-changes.ts), so what Wallet's requests check can be remembered. */
  passChanges: PassChanges;
  /** For the schema engine (migrations, status). */
  adapterFactory: SqlMigrationAwareDriverAdapterFactory;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgres://… selects PostgreSQL; absent selects the embedded PGlite under dataDir. */
  databaseUrl?: string | undefined;
  dataDir: string;
  log: Logger;
  /** Apply pending migrations before returning (the server does; tools that only read status do not). */
  migrate?: boolean;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const database = options.databaseUrl
    ? openPostgres(options.databaseUrl, options.log)
    : await openEmbedded(join(options.dataDir, 'pglite'), options.log);
  if (options.migrate ?? true) {
    try {
      const applied = await applyMigrations(database.adapterFactory);
      if (applied.length > 0) options.log.info({ migrations: applied }, 'applied database migrations');
    } catch (error) {
      await database.close();
      throw error;
    }
  }
  return database;
}

/** A SqlQuery on pg's pool or one of its clients: prepared statements are sent by name (see PreparedStatement). */
function pgQueryOn(db: pg.Pool | pg.PoolClient): SqlQuery {
  return async <Row extends Record<string, unknown>>(sql: string | PreparedStatement, params: unknown[]) =>
    (
      await db.query<Row>(
        typeof sql === 'string' ? { text: sql, values: params } : { ...sql, values: params },
      )
    ).rows;
}

/** A SqlQuery on PGlite or its transaction, which plan every statement anyway. */
function pgliteQueryOn(db: Pick<PGlite, 'query'>): SqlQuery {
  return async <Row extends Record<string, unknown>>(sql: string | PreparedStatement, params: unknown[]) =>
    (await db.query<Row>(sqlText(sql), params, pgliteQueryOptions)).rows;
}

function openPostgres(connectionString: string, log: Logger): Database {
  const pool = new pg.Pool({ connectionString });
  // An idle connection that PostgreSQL closes (restart, failover, an administrator) is reported on the pool; unheard,
  // that error would end the process. The pool drops the connection and opens a new one when next needed. Prisma
  // listens too, but only while it is connected, and the driver path uses the pool before and after Prisma.
  pool.on('error', (error) => log.warn({ err: error }, 'an idle database connection was closed'));
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const passChanges = createPassChanges(postgresNotificationSession(connectionString), { log });
  const handles = {
    prisma,
    query: pgQueryOn(pool),
    transaction: <T>(run: (query: SqlQuery) => Promise<T>) => inPoolTransaction(pool, run),
  };
  return {
    ...handles,
    repositories: createRepositories(handles),
    kind: 'postgresql',
    passChanges,
    adapterFactory: new PostgresMigrationAdapterFactory(connectionString),
    close: async () => {
      await passChanges.close();
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

async function inPoolTransaction<T>(pool: pg.Pool, run: (query: SqlQuery) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A connection that breaks while checked out reports it here (unheard, the error would end the process); it is
  // then released with the error, so the pool closes it instead of handing it out again.
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await run(pgQueryOn(client));
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch((rollbackError: unknown) => {
      broken ??= rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
    });
    throw error;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

/** An embedded PostgreSQL (PGlite) in one folder: one process owns it at a time. */
export async function openEmbedded(dir: string, log: Logger): Promise<Database> {
  if (!dir.startsWith('memory://')) mkdirSync(dir, { recursive: true });
  const client = await PGlite.create(dir);
  return embeddedDatabase(client, log);
}

export function embeddedDatabase(client: PGlite, log: Logger): Database {
  const adapterFactory = new PGliteAdapterFactory(client);
  const prisma = new PrismaClient({ adapter: adapterFactory });
  // In this process, nothing can get stuck between PGlite and us: a fence only waits for a transaction in progress
  // (PGlite runs one at a time), however long that takes.
  const passChanges = createPassChanges(embeddedNotificationSession(client), {
    log,
    fenceTimeoutMs: Number.POSITIVE_INFINITY,
  });
  const handles = {
    prisma,
    query: pgliteQueryOn(client),
    transaction: <T>(run: (query: SqlQuery) => Promise<T>) =>
      client.transaction((tx) => run(pgliteQueryOn(tx))),
  };
  return {
    ...handles,
    repositories: createRepositories(handles),
    kind: 'embedded',
    passChanges,
    adapterFactory,
    close: async () => {
      await passChanges.close();
      await prisma.$disconnect();
      await client.close();
    },
  };
}
