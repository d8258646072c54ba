import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import type { Logger } from '../logger.js';
import { PrismaClient } from './generated/client.js';
import { applyMigrations } from './migrations.js';
import { PGliteAdapterFactory } from './pglite.js';

export type { PrismaClient };
export type DatabaseKind = 'postgresql' | 'embedded';

export interface Database {
  prisma: PrismaClient;
  kind: DatabaseKind;
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
    ? openPostgres(options.databaseUrl)
    : await openEmbedded(join(options.dataDir, 'pglite'));
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

function openPostgres(connectionString: string): Database {
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString }) });
  return {
    prisma,
    kind: 'postgresql',
    adapterFactory: new PrismaPg({ connectionString }),
    close: () => prisma.$disconnect(),
  };
}

/** An embedded PostgreSQL (PGlite) in one folder: one process owns it at a time. */
export async function openEmbedded(dir: string): Promise<Database> {
  if (!dir.startsWith('memory://')) mkdirSync(dir, { recursive: true });
  const client = await PGlite.create(dir);
  return embeddedDatabase(client);
}

export function embeddedDatabase(client: PGlite): Database {
  const adapterFactory = new PGliteAdapterFactory(client);
  const prisma = new PrismaClient({ adapter: adapterFactory });
  return {
    prisma,
    kind: 'embedded',
    adapterFactory,
    close: async () => {
      await prisma.$disconnect();
      await client.close();
    },
  };
}
