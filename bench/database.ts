import { PGlite } from '@electric-sql/pglite';
import pino from 'pino';
import { type Database, embeddedDatabase, openDatabase } from '../src/db/database.js';
import { applyMigrations } from '../src/db/migrations.js';
import { createFreshPostgresDatabase } from '../test/support/database.js';

/** A fresh, migrated database for one benchmark: PostgreSQL under BENCH_DATABASE_URL, else an in-memory PGlite. */
export async function benchDatabase(): Promise<{ database: Database; drop: () => Promise<void> }> {
  const baseUrl = process.env.BENCH_DATABASE_URL;
  if (!baseUrl) {
    const database = embeddedDatabase(await PGlite.create(), pino({ level: 'silent' }));
    await applyMigrations(database.adapterFactory);
    return { database, drop: async () => {} };
  }
  const fresh = await createFreshPostgresDatabase(baseUrl);
  const log = pino({ level: 'silent' });
  return { database: await openDatabase({ databaseUrl: fresh.url, dataDir: '', log }), drop: fresh.drop };
}
