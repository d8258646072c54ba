import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import pino from 'pino';
import { type Database, embeddedDatabase, openDatabase } from '../../src/db/database.js';
import { applyMigrations } from '../../src/db/migrations.js';

/**
 * The database a test file runs against: PostgreSQL when TEST_DATABASE_URL is set (a fresh database per call,
 * dropped on close), otherwise a fresh in-memory embedded PGlite. Both get the committed migrations.
 */
export const testDatabaseUrl = process.env.TEST_DATABASE_URL;
export const testDatabaseKind = testDatabaseUrl ? 'postgresql' : 'embedded';

export async function openTestDatabase(): Promise<Database & { url?: string }> {
  if (!testDatabaseUrl) {
    const database = embeddedDatabase(await PGlite.create(), pino({ level: 'silent' }));
    await applyMigrations(database.adapterFactory);
    return database;
  }
  const { url, drop } = await createFreshPostgresDatabase(testDatabaseUrl);
  const database = await openDatabase({ databaseUrl: url, dataDir: '', log: pino({ level: 'silent' }) });
  return {
    ...database,
    url,
    close: async () => {
      await database.close();
      await drop();
    },
  };
}

/** A new, empty database on the server of `baseUrl`; `drop()` removes it. */
export async function createFreshPostgresDatabase(baseUrl: string) {
  const name = `pks_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: baseUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}
