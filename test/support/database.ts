import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import pino from 'pino';
import { inject } from 'vitest';
import { type Database, embeddedDatabase, openDatabase } from '../../src/db/database.js';
import { applyMigrations } from '../../src/db/migrations.js';

/**
 * The database a test file runs against: PostgreSQL when TEST_DATABASE_URL is set (a new database per call,
 * dropped on close), otherwise an in-memory embedded PGlite. Both hold the committed migrations, with their
 * `_prisma_migrations` rows, so status checks see them applied.
 */
export const testDatabaseUrl = process.env.TEST_DATABASE_URL;
export const testDatabaseKind = testDatabaseUrl ? 'postgresql' : 'embedded';

/** The database that test/support/global-setup.ts migrated once per run, for each file to copy. */
export type MigratedTemplate =
  | { kind: 'postgresql'; database: string }
  | { kind: 'embedded'; tarball: string };

/** Under vitest, the run's migrated template; elsewhere (the benchmarks), none: each database is migrated. */
function migratedTemplate(): MigratedTemplate | undefined {
  return process.env.VITEST ? inject('migratedTemplate') : undefined;
}

export async function openTestDatabase(): Promise<Database & { url?: string }> {
  const template = migratedTemplate();
  if (!testDatabaseUrl) {
    const log = pino({ level: 'silent' });
    if (template?.kind === 'embedded') return embeddedDatabase(await loadEmbeddedCopy(template.tarball), log);
    const database = embeddedDatabase(await PGlite.create(), log);
    await applyMigrations(database.adapterFactory);
    return database;
  }
  const { url, drop } = await createFreshPostgresDatabase(
    testDatabaseUrl,
    template?.kind === 'postgresql' ? template.database : undefined,
  );
  // A copy of the template needs no migrations; without one, openDatabase applies them.
  const database = await openDatabase({
    databaseUrl: url,
    dataDir: '',
    log: pino({ level: 'silent' }),
    migrate: template === undefined,
  });
  return {
    ...database,
    url,
    close: async () => {
      await database.close();
      await drop();
    },
  };
}

let tarball: Promise<File> | undefined;

/** A new PGlite (in memory, or in `dir`) from the template's data directory: PGlite skips initdb when it loads one. */
async function loadEmbeddedCopy(path: string, dir?: string): Promise<PGlite> {
  tarball ??= readFile(path).then((bytes) => new File([bytes], 'pgdata.tar'));
  return PGlite.create({ ...(dir ? { dataDir: dir } : {}), loadDataDir: await tarball });
}

/**
 * The database part of a server process's environment: DATA_DIR, a new folder (which holds the embedded
 * database), and with TEST_DATABASE_URL, DATABASE_URL, a new database whose drop goes to `cleanups`. It holds
 * the migrations already, so the server has none to apply; `fromNothing` leaves both empty, as at a first start.
 * A restart on the same environment finds the same data.
 */
export async function serverDataEnv(
  cleanups: Array<() => Promise<void>>,
  { fromNothing = false } = {},
): Promise<Record<string, string>> {
  const dataDir = await mkdtemp(join(tmpdir(), 'pks-data-'));
  const template = fromNothing ? undefined : migratedTemplate();
  if (!testDatabaseUrl) {
    if (template?.kind === 'embedded') {
      // Where src/db/database.ts keeps the embedded database under DATA_DIR.
      await (await loadEmbeddedCopy(template.tarball, join(dataDir, 'pglite'))).close();
    }
    return { DATA_DIR: dataDir };
  }
  const database = await createFreshPostgresDatabase(
    testDatabaseUrl,
    template?.kind === 'postgresql' ? template.database : undefined,
  );
  cleanups.push(database.drop);
  return { DATA_DIR: dataDir, DATABASE_URL: database.url };
}

/**
 * A new database on the server of `baseUrl`: empty, or a copy of `template` (which nobody may be connected to);
 * `drop()` removes it.
 */
export async function createFreshPostgresDatabase(baseUrl: string, template?: string) {
  const name = `pks_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: baseUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}
