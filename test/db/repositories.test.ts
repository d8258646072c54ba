import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import { insertDevice, insertPass, outboxRows, register } from '../push/outbox-fixtures.js';
import { openTestDatabase, testDatabaseKind } from '../support/database.js';

const passType = 'pass.com.example.loyalty';
const key = { passTypeIdentifier: passType, serialNumber: 'r1' };
const t0 = new Date('2026-03-01T12:00:00.000Z');

let database: Database & { url?: string };

beforeAll(async () => {
  database = await openTestDatabase();
});

afterAll(async () => {
  await database?.close();
});

beforeEach(async () => {
  await database.prisma
    .$executeRaw`TRUNCATE push_outbox, push_failures, registrations, devices, passes CASCADE`;
  const passId = await insertPass(database.prisma, passType, key.serialNumber);
  const deviceId = await insertDevice(database.prisma, 'device-r1');
  await register(database.prisma, { deviceId, passId, pushToken: 'token-r1', registeredAt: t0 });
});

describe('repositories.inTransaction', () => {
  it('commits a new version and its outbox row together', async () => {
    const version = await database.repositories.inTransaction(async (tx) => {
      const pass = await tx.passes.lockForChange(key);
      if (!pass) throw new Error('no pass');
      const [written] = await tx.passes.writeNewVersions([{ ...pass, fields: { points: 1 } }], t0);
      await tx.outbox.enqueue(pass.id, passType, t0);
      return written?.version;
    });
    expect(version).toBe(2);
    expect((await database.repositories.passes.find(key))?.fields).toEqual({ points: 1 });
    expect(await outboxRows(database.prisma)).toHaveLength(1);
  });

  it('rolls back the version and its outbox rows when the change throws', async () => {
    const change = database.repositories.inTransaction(async (tx) => {
      const pass = await tx.passes.lockForChange(key);
      if (!pass) throw new Error('no pass');
      await tx.passes.writeNewVersions([{ ...pass, fields: { points: 1 } }], t0);
      await tx.outbox.enqueue(pass.id, passType, t0);
      throw new Error('signing failed');
    });
    await expect(change).rejects.toThrow('signing failed');
    expect((await database.repositories.passes.find(key))?.version).toBe(1);
    expect(await outboxRows(database.prisma)).toEqual([]);
  });

  it('refuses statements once timeoutMs has passed, and rolls back', async () => {
    const change = database.repositories.inTransaction(
      async (tx) => {
        const pass = await tx.passes.lockForChange(key);
        if (!pass) throw new Error('no pass');
        await tx.passes.writeNewVersions([{ ...pass, fields: { points: 1 } }], t0);
        await new Promise((resolve) => setTimeout(resolve, 150));
        await tx.outbox.enqueue(pass.id, passType, t0);
      },
      { timeoutMs: 100 },
    );
    await expect(change).rejects.toThrow(ServiceUnavailableError);
    await expect(change).rejects.toThrow(/not done within 100 ms/);
    expect((await database.repositories.passes.find(key))?.version).toBe(1);
    expect(await outboxRows(database.prisma)).toEqual([]);
  });

  it.skipIf(testDatabaseKind !== 'embedded')(
    'refuses at timeoutMs a transaction that cannot start (PGlite runs one at a time), and never runs it',
    async () => {
      let ran = false;
      const holder = database.transaction(() => new Promise((resolve) => setTimeout(resolve, 600)));
      const started = Date.now();
      const change = database.repositories.inTransaction(
        async () => {
          ran = true;
        },
        { timeoutMs: 100 },
      );
      await expect(change).rejects.toThrow(/no transaction could be started within 100 ms/);
      expect(Date.now() - started).toBeLessThan(500);
      await holder;
      // The abandoned transaction started after the holder and rolled back at once.
      await database.query('SELECT 1', []);
      expect(ran).toBe(false);
    },
  );

  it.skipIf(testDatabaseKind !== 'postgresql')(
    'ends a statement that waits for a lock beyond timeoutMs (statement_timeout)',
    async () => {
      const locker = new pg.Client({ connectionString: database.url });
      await locker.connect();
      try {
        await locker.query('BEGIN');
        await locker.query('SELECT id FROM passes WHERE serial_number = $1 FOR UPDATE', [key.serialNumber]);
        const change = database.repositories.inTransaction((tx) => tx.passes.lockForChange(key), {
          timeoutMs: 200,
        });
        await expect(change).rejects.toThrow(ServiceUnavailableError);
        await expect(change).rejects.toMatchObject({
          cause: { message: expect.stringMatching(/statement timeout/) },
        });
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
    },
  );

  it('runs transactions of one queue key one at a time, and refuses one that waits past maxWaitMs', async () => {
    const order: string[] = [];
    const queued = (name: string, maxWaitMs: number, holdMs: number) =>
      database.repositories.inTransaction(
        async (tx) => {
          order.push(`${name} start`);
          await tx.passes.lockForChange(key);
          await new Promise((resolve) => setTimeout(resolve, holdMs));
          order.push(`${name} end`);
          return name;
        },
        { queue: { key: 'pass r1', maxWaitMs } },
      );
    const first = queued('first', 1_000, 300);
    const impatient = queued('impatient', 50, 0);
    const patient = queued('patient', 5_000, 0);
    await expect(impatient).rejects.toThrow(ServiceUnavailableError);
    await expect(impatient).rejects.toMatchObject({ statusCode: 503, retryAfterSeconds: 2 });
    expect(await Promise.all([first, patient])).toEqual(['first', 'patient']);
    // The refused one never ran, and the one after it still waited for the one before it.
    expect(order).toEqual(['first start', 'first end', 'patient start', 'patient end']);
  });
});
