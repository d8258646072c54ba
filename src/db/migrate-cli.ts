/*
 * Offline equivalents of `prisma migrate deploy|status|dev --create-only`, using Prisma's own schema engine in
 * its WebAssembly build (Prisma's CLI needs a native engine that it downloads, which fails without internet).
 * The files and the `_prisma_migrations` table are the same, so the real `prisma migrate` works on them too.
 *   npm run db:migrate                      apply pending migrations (DATABASE_URL, or the embedded database)
 *   npm run db:migrate:status               list pending / failed / edited migrations
 *   npm run db:migration:create -- <name>   write prisma/migrations/<timestamp>_<name>/ from schema changes
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../config.js';
import { migrationsDir } from '../paths.js';
import { openDatabase } from './database.js';
import {
  applyMigrations,
  diffSchemaAgainstMigrations,
  lockfileContent,
  lockfileName,
  migrationStatus,
} from './migrations.js';

async function withDatabase(run: (database: Awaited<ReturnType<typeof openDatabase>>) => Promise<void>) {
  const config = loadConfig();
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    log: pino({ level: 'silent' }),
    migrate: false,
  });
  try {
    await run(database);
  } finally {
    await database.close();
  }
}

async function deploy() {
  await withDatabase(async (database) => {
    const applied = await applyMigrations(database.adapterFactory);
    console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'No pending migrations.');
  });
}

async function status() {
  await withDatabase(async (database) => {
    const result = await migrationStatus(database.adapterFactory);
    console.log(JSON.stringify(result, null, 2));
    if (result.pending.length || result.failed.length || result.edited.length) process.exitCode = 1;
  });
}

function timestamp(now = new Date()): string {
  return now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

async function create(name: string | undefined) {
  if (!name || !/^[a-z0-9_]+$/.test(name))
    throw new Error('usage: npm run db:migration:create -- <name_in_snake_case>');
  const sql = await diffSchemaAgainstMigrations();
  if (/^\s*(--.*\s*)*$/.test(sql)) {
    console.log('prisma/schema.prisma matches the migrations: nothing to create.');
    return;
  }
  const dir = join(migrationsDir, `${timestamp()}_${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'migration.sql'), sql);
  writeFileSync(join(migrationsDir, lockfileName), lockfileContent);
  console.log(`Created ${dir}/migration.sql — review it, then commit it.`);
}

const [command, argument] = process.argv.slice(2);
const commands: Record<string, () => Promise<void>> = { deploy, status, create: () => create(argument) };
const run = commands[command ?? ''];
if (!run) {
  console.error('usage: migrate-cli deploy | status | create <name>');
  process.exit(2);
}
run().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
