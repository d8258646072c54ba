/*
 * The database handle survives PostgreSQL closing its connections (a restart, a failover, an administrator): the
 * pool's idle connections and the LISTEN session. Unheard, an idle connection's error would end the process; the
 * vitest run would then fail with an unhandled error.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openTestDatabase, testDatabaseKind } from '../support/database.js';

describe.skipIf(testDatabaseKind !== 'postgresql')('PostgreSQL connections', () => {
  it('are opened again after PostgreSQL closed them all, idle ones included', async () => {
    const database = await openTestDatabase();
    try {
      // Several idle connections in the pool, used by the driver path only: Prisma, which would also listen for
      // the pool's errors while it is connected, has not connected yet (as in a server no admin has called).
      await Promise.all(Array.from({ length: 4 }, () => database.query('SELECT pg_sleep(0.05)', [])));
      const admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
      const { rows } = await admin.query<{ terminated: number }>(
        `SELECT count(*)::int AS terminated FROM (
           SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t`,
      );
      await admin.end();
      expect(rows[0]?.terminated).toBeGreaterThanOrEqual(2);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await database.query<{ one: number }>('SELECT 1 AS one', [])).toEqual([{ one: 1 }]);
      expect(await database.prisma.$queryRaw`SELECT 1 AS one`).toEqual([{ one: 1 }]);
      // The LISTEN session comes back too.
      let caughtUp = false;
      for (let i = 0; i < 100 && !caughtUp; i++) {
        caughtUp = await database.passChanges.caughtUp();
        if (!caughtUp) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(caughtUp).toBe(true);
    } finally {
      await database.close();
    }
  });
});

describe.skipIf(testDatabaseKind !== 'postgresql')('Prepared statements', () => {
  it('are prepared under their name on each connection, and again on a new one', async () => {
    const database = await openTestDatabase();
    const statement = { name: 'test-add-one', text: 'SELECT $1::int + 1 AS sum' };
    const preparedOnConnection = () =>
      database.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements WHERE name = $1', [
        statement.name,
      ]);
    try {
      expect(await database.query(statement, [1])).toEqual([{ sum: 2 }]);
      expect(await database.query(statement, [2])).toEqual([{ sum: 3 }]);
      // One query at a time: the pool hands out its one idle connection, the one that prepared it.
      expect(await preparedOnConnection()).toEqual([{ statement: statement.text }]);
      const admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
      await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      );
      await admin.end();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await database.query(statement, [3])).toEqual([{ sum: 4 }]);
      expect(await preparedOnConnection()).toEqual([{ statement: statement.text }]);
    } finally {
      await database.close();
    }
  });
});
