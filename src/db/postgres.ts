import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlDriverAdapter, SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import pg from 'pg';

/*
 * @prisma/adapter-pg 7.10 runs a migration script by splitting it on every ";", which cuts a function body
 * ($$ … ; … $$, as in the pass change trigger) apart. This factory, for the schema engine only, hands out its
 * adapters with executeScript sending the whole script as one simple-protocol query: PostgreSQL parses it itself,
 * and runs it as one implicit transaction, so a failing migration leaves nothing half applied.
 */
export class PostgresMigrationAdapterFactory implements SqlMigrationAwareDriverAdapterFactory {
  readonly provider = 'postgres';
  readonly adapterName: string;
  readonly #inner: PrismaPg;

  constructor(private readonly connectionString: string) {
    this.#inner = new PrismaPg({ connectionString });
    this.adapterName = this.#inner.adapterName;
  }

  async connect(): Promise<SqlDriverAdapter> {
    const adapter = await this.#inner.connect();
    adapter.executeScript = (script) => runScript(this.connectionString, script);
    return adapter;
  }

  /** Not used here: migrations are diffed in an in-memory PGlite (src/db/migrations.ts). */
  connectToShadowDb(): Promise<SqlDriverAdapter> {
    return this.#inner.connectToShadowDb();
  }
}

async function runScript(connectionString: string, script: string): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query(script);
  } finally {
    await client.end();
  }
}
