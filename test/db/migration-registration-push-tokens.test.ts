import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { migrationsDir } from '../../src/paths.js';
import { createFreshPostgresDatabase, testDatabaseUrl } from '../support/database.js';

/*
 * The migration that moves push tokens from devices to registrations, on a database that has data: every
 * registration keeps the token its device had, and a server of the previous release (which inserts registrations
 * without a token) still works during a rolling upgrade. On the test database's kind, from an empty database.
 */
const migration = 'registration_push_tokens';
const names = readdirSync(migrationsDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort();
const index = names.findIndex((name) => name.endsWith(`_${migration}`));
const sqlOf = (name: string) => readFileSync(join(migrationsDir, name, 'migration.sql'), 'utf8');

type Run = (sql: string) => Promise<Array<Record<string, unknown>>>;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function emptyDatabase(): Promise<Run> {
  if (!testDatabaseUrl) {
    const db = await PGlite.create();
    cleanups.push(() => db.close());
    return async (sql) => {
      const results = await db.exec(sql);
      return (results.at(-1)?.rows ?? []) as Array<Record<string, unknown>>;
    };
  }
  const fresh = await createFreshPostgresDatabase(testDatabaseUrl);
  const client = new pg.Client({ connectionString: fresh.url });
  await client.connect();
  cleanups.push(async () => {
    await client.end();
    await fresh.drop();
  });
  return async (sql) => {
    const result = await client.query(sql);
    const last = Array.isArray(result) ? result.at(-1) : result;
    return (last?.rows ?? []) as Array<Record<string, unknown>>;
  };
}

describe(`the ${migration} migration`, () => {
  it('copies each device’s push token onto its registrations, and fills it for the previous release’s inserts', async () => {
    expect(index).toBeGreaterThan(0);
    const run = await emptyDatabase();
    for (const name of names.slice(0, index)) await run(sqlOf(name));
    await run(`
      INSERT INTO passes (id, pass_type_identifier, serial_number, authentication_token, template, last_modified)
      VALUES (1, 'pass.t', 'a', 'token-a-0123456789', 'loyalty', now()),
             (2, 'pass.t', 'b', 'token-b-0123456789', 'loyalty', now());
      INSERT INTO devices (id, device_library_identifier, push_token) VALUES (1, 'd1', 'push-1'), (2, 'd2', 'push-2');
      INSERT INTO registrations (device_id, pass_id) VALUES (1, 1), (1, 2), (2, 1);`);

    await run(sqlOf(names[index] as string));
    expect(
      await run(
        'SELECT device_id::int, pass_id::int, push_token FROM registrations ORDER BY device_id, pass_id',
      ),
    ).toEqual([
      { device_id: 1, pass_id: 1, push_token: 'push-1' },
      { device_id: 1, pass_id: 2, push_token: 'push-1' },
      { device_id: 2, pass_id: 1, push_token: 'push-2' },
    ]);

    // The previous release's register statement: no push_token on the registration, the device's instead.
    await run(`
      INSERT INTO devices (id, device_library_identifier, push_token) VALUES (3, 'd3', 'push-3');
      INSERT INTO registrations (device_id, pass_id) VALUES (3, 2);`);
    expect(await run('SELECT push_token FROM registrations WHERE device_id = 3')).toEqual([
      { push_token: 'push-3' },
    ]);
    // This release's: the registration's own token stands.
    await run(`INSERT INTO registrations (device_id, pass_id, push_token) VALUES (2, 2, 'push-2b')`);
    expect(await run('SELECT push_token FROM registrations WHERE device_id = 2 AND pass_id = 2')).toEqual([
      { push_token: 'push-2b' },
    ]);
  });
});
