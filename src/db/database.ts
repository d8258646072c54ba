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
import { PGliteAdapterFactory } from './pglite.js';
import { PostgresMigrationAdapterFactory } from './postgres.js';

export type { PrismaClient };
export type DatabaseKind = 'postgresql' | 'embedded';

/**
 * One statement with $1… parameters, past Prisma, straight to the driver (pg's pool, which Prisma shares, or PGlite).
 * Only for the statements every Wallet request runs: Prisma's raw queries cost about 3× bare pg's here. Rows come
 * as the driver gives them, so the statements cast what differs between the two (bigint ids to text).
 */
export type SqlQuery = <Row extends Record<string, unknown>>(
  sql: string,
  params: unknown[],
) => Promise<Row[]>;

export interface Database {
  prisma: PrismaClient;
  kind: DatabaseKind;
  query: SqlQuery;
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

function openPostgres(connectionString: string, log: Logger): Database {
  const pool = new pg.Pool({ connectionString });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const passChanges = createPassChanges(postgresNotificationSession(connectionString), { log });
  return {
    prisma,
    kind: 'postgresql',
    query: async <Row extends Record<string, unknown>>(sql: string, params: unknown[]) =>
      (await pool.query<Row>(sql, params)).rows,
    passChanges,
    adapterFactory: new PostgresMigrationAdapterFactory(connectionString),
    close: async () => {
      await passChanges.close();
      await prisma.$disconnect();
      await pool.end();
    },
  };
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
  const passChanges = createPassChanges(embeddedNotificationSession(client), { log });
  return {
    prisma,
    kind: 'embedded',
    query: async <Row extends Record<string, unknown>>(sql: string, params: unknown[]) =>
      (await client.query<Row>(sql, params)).rows,
    passChanges,
    adapterFactory,
    close: async () => {
      await passChanges.close();
      await prisma.$disconnect();
      await client.close();
    },
  };
}
