/*
 * Runs once per `vitest run`, before any test file: migrates one database, which every test file then copies
 * (test/support/database.ts), instead of each file migrating its own from nothing. The schema engine and
 * PGlite's initdb are the slowest part of opening a database, and copying skips both.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pino from 'pino';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../src/db/database.js';
import { applyMigrations } from '../../src/db/migrations.js';
import { PGliteAdapterFactory } from '../../src/db/pglite.js';
import { createFreshPostgresDatabase, type MigratedTemplate, testDatabaseUrl } from './database.js';

declare module 'vitest' {
  export interface ProvidedContext {
    migratedTemplate: MigratedTemplate;
  }
}

const log = pino({ level: 'silent' });

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (testDatabaseUrl) {
    // CREATE DATABASE … TEMPLATE copies it; PostgreSQL refuses while anyone is connected to it, so it is closed.
    const { url, name, drop } = await createFreshPostgresDatabase(testDatabaseUrl);
    await (await openDatabase({ databaseUrl: url, dataDir: '', log })).close();
    project.provide('migratedTemplate', { kind: 'postgresql', database: name });
    return drop;
  }
  const dir = await mkdtemp(join(tmpdir(), 'pks-test-template-'));
  const client = await PGlite.create();
  try {
    await applyMigrations(new PGliteAdapterFactory(client));
    const tarball = join(dir, 'pgdata.tar');
    // Uncompressed: every file loads it, and unpacking a gzip would cost each of them more than reading the bytes.
    const dump = await client.dumpDataDir('none');
    await writeFile(tarball, new Uint8Array(await dump.arrayBuffer()));
    project.provide('migratedTemplate', { kind: 'embedded', tarball });
  } finally {
    await client.close();
  }
  return () => rm(dir, { recursive: true, force: true });
}
