import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { PrismaClient } from '../../src/db/generated/client.js';
import { createOutboxRepository, type OutboxRepository, pushTokenHash } from '../../src/db/outbox.js';
import type { RegistrationsRepository } from '../../src/db/registrations.js';
import {
  emptyPushTables,
  insertDevice,
  insertPass,
  outboxRows,
  passType,
  passWithDevices,
  register,
} from '../push/outbox-fixtures.js';
import { openTestDatabase, testDatabaseKind } from '../support/database.js';

const t0 = new Date('2026-03-01T12:00:00.000Z');
const at = (ms: number) => new Date(t0.getTime() + ms);

let database: Database & { url?: string };
let outbox: OutboxRepository;
let registrations: RegistrationsRepository;

beforeAll(async () => {
  database = await openTestDatabase();
  ({ outbox, registrations } = database.repositories);
});

afterAll(async () => {
  await database?.close();
});

beforeEach(() => emptyPushTables(database.prisma));

describe('coalescing in push_outbox', () => {
  it('keeps one unclaimed row per push token and pass type, however many changes come first', async () => {
    const { prisma } = database;
    const { passId } = await passWithDevices(database, { count: 3, now: t0 });
    await outbox.enqueue(passId, passType, at(1));
    expect(await outboxRows(prisma)).toHaveLength(3);
  });

  it.skipIf(testDatabaseKind !== 'postgresql')(
    'keeps a merged row from being claimed until the change that merged into it commits',
    async () => {
      const { passId } = await passWithDevices(database, { count: 1, now: t0 });
      let commit: () => void = () => {};
      const committed = new Promise<void>((resolve) => {
        commit = resolve;
      });
      let merged: () => void = () => {};
      const mergedIn = new Promise<void>((resolve) => {
        merged = resolve;
      });
      const change = database.repositories.inTransaction(async (tx) => {
        await tx.outbox.enqueue(passId, passType, at(1));
        merged();
        await committed;
      });
      await mergedIn;
      // While the change is open, a worker must not take the row it merged into.
      expect(await outbox.claimDue({ limit: 10, leaseMs: 30_000, now: at(2) })).toHaveLength(0);
      commit();
      await change;
      expect(await outbox.claimDue({ limit: 10, leaseMs: 30_000, now: at(2) })).toHaveLength(1);
    },
  );

  it('adds a new row for a change that arrives while the push for that token is in flight', async () => {
    const { prisma } = database;
    const { passId } = await passWithDevices(database, { count: 1, now: t0 });
    const [claim] = await outbox.claimDue({ limit: 10, leaseMs: 30_000, now: t0 });
    expect(await outbox.enqueue(passId, passType, at(1))).toBe(1);
    const rows = await outboxRows(prisma);
    expect(rows.map((row) => row.claimed_until === null)).toEqual([false, true]);
    // The claimed row is done; the new one still tells the device about the later change.
    expect(claim && (await outbox.complete(claim))).toBe(true);
    expect(await outboxRows(prisma)).toHaveLength(1);
  });

  it('a retry of the in-flight row merges into the newer row instead of breaking the unique index', async () => {
    const { prisma } = database;
    const { passId } = await passWithDevices(database, { count: 1, now: t0 });
    const [claim] = await outbox.claimDue({ limit: 10, leaseMs: 30_000, now: t0 });
    if (!claim) throw new Error('nothing claimed');
    await outbox.enqueue(passId, passType, at(1));
    await outbox.scheduleRetry(claim, { attempts: 1, dueAt: at(60_000), reason: 'ServiceUnavailable' });
    const rows = await outboxRows(prisma);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ attempts: 0, claimed_until: null, due_at: at(1) });
  });
});

describe('claimDue', () => {
  it('claims due rows oldest first, up to the limit, and not the ones due later', async () => {
    await passWithDevices(database, { serialNumber: 'late', count: 2, now: at(5_000) });
    await passWithDevices(database, {
      passTypeIdentifier: passType,
      serialNumber: 'early',
      count: 3,
      now: t0,
    });
    const claimed = await outbox.claimDue({ limit: 2, leaseMs: 30_000, now: at(1_000) });
    expect(claimed.map((push) => push.dueAt)).toEqual([t0, t0]);
    expect(claimed[0]).toMatchObject({ passTypeIdentifier: passType, attempts: 0, claimedUntil: at(31_000) });
    const rest = await outbox.claimDue({ limit: 10, leaseMs: 30_000, now: at(1_000) });
    expect(rest).toHaveLength(1);
  });

  it('makes a row due again when its lease runs out (its worker died), and the old lease can no longer act', async () => {
    const { prisma } = database;
    await passWithDevices(database, { passTypeIdentifier: passType, serialNumber: 'a', count: 1, now: t0 });
    const [first] = await outbox.claimDue({ limit: 10, leaseMs: 30_000, now: t0 });
    expect(await outbox.claimDue({ limit: 10, leaseMs: 30_000, now: at(30_000) })).toEqual([]);
    const [second] = await outbox.claimDue({ limit: 10, leaseMs: 30_000, now: at(30_001) });
    expect(second?.id).toBe(first?.id);
    if (!first || !second) throw new Error('nothing claimed');
    expect(await outbox.complete(first)).toBe(false);
    expect(await outbox.complete(second)).toBe(true);
    expect(await outboxRows(prisma)).toEqual([]);
  });

  it.skipIf(testDatabaseKind !== 'postgresql')(
    'never hands one row to two instances claiming at once (FOR UPDATE SKIP LOCKED)',
    async () => {
      for (let i = 0; i < 8; i += 1) {
        await passWithDevices(database, { serialNumber: `p${i}`, count: 50, now: t0 });
      }
      const instances = [1, 2, 3].map(
        () => new PrismaClient({ adapter: new PrismaPg({ connectionString: database.url }) }),
      );
      try {
        const claimedBy = await Promise.all(instances.map((instance) => claimUntilEmpty(instance)));
        const ids = claimedBy.flat().map(String);
        expect(ids).toHaveLength(400);
        expect(new Set(ids).size).toBe(400);
        expect(claimedBy.filter((claimed) => claimed.length > 0).length).toBeGreaterThan(1);
      } finally {
        await Promise.all(instances.map((instance) => instance.$disconnect()));
      }
    },
  );
});

async function claimUntilEmpty(prisma: PrismaClient): Promise<bigint[]> {
  const ids: bigint[] = [];
  const instance = createOutboxRepository({ prisma, query: database.query });
  for (;;) {
    const claimed = await instance.claimDue({ limit: 7, leaseMs: 30_000, now: at(1) });
    if (claimed.length === 0) return ids;
    ids.push(...claimed.map((push) => push.id));
  }
}

describe('completeMany (the worker’s batched completion)', () => {
  it('deletes in one statement only the rows that still hold the lease they were claimed with', async () => {
    const { prisma } = database;
    const { passId, pushTokens } = await passWithDevices(database, { count: 4, now: t0 });
    const claimOne = async (leaseMs: number, now: Date) => {
      const [claim] = await outbox.claimDue({ limit: 1, leaseMs, now });
      if (!claim) throw new Error('nothing claimed');
      return claim;
    };
    const delivered = await claimOne(60_000, t0);
    const expired = await claimOne(10_000, t0);
    const retried = await claimOne(60_000, t0);
    const alsoDelivered = await claimOne(60_000, t0);
    // Lease lost: it ran out and another worker claimed the row again (and is sending it).
    const reclaimed = await claimOne(60_000, at(10_001));
    expect(reclaimed.id).toBe(expired.id);
    // Given back, then a newer change merged into the unclaimed row: that row now carries the newer push.
    await outbox.scheduleRetry(retried, { attempts: 1, dueAt: at(5_000), reason: 'TooManyRequests' });
    await outbox.enqueue(passId, passType, at(10_002));

    expect(await outbox.completeMany([delivered, expired, retried, alsoDelivered])).toBe(2);
    const rows = await outboxRows(prisma);
    const ids = rows.map((row) => row.id);
    expect(ids).not.toContain(delivered.id);
    expect(ids).not.toContain(alsoDelivered.id);
    expect(rows.find((row) => row.id === expired.id)?.claimed_until).toEqual(reclaimed.claimedUntil);
    // Still there, unclaimed, and the only row for its token: the change merged into it.
    expect(rows.find((row) => row.id === retried.id)).toMatchObject({ claimed_until: null, attempts: 1 });
    expect(rows.filter((row) => row.push_token === retried.pushToken)).toHaveLength(1);
    // The change also added an unclaimed row for each token whose push was in flight: all four tokens still get it.
    expect(new Set(rows.filter((row) => row.claimed_until === null).map((row) => row.push_token))).toEqual(
      new Set(pushTokens),
    );
    expect(await outbox.completeMany([reclaimed])).toBe(1);
    expect(await outbox.completeMany([])).toBe(0);
  });
});

describe('releasing a claim', () => {
  it('scheduleRetry gives the row back with its attempts, due date and reason', async () => {
    const { prisma } = database;
    await passWithDevices(database, { passTypeIdentifier: passType, serialNumber: 'a', count: 1, now: t0 });
    const [claim] = await outbox.claimDue({ limit: 1, leaseMs: 30_000, now: t0 });
    if (!claim) throw new Error('nothing claimed');
    await outbox.scheduleRetry(claim, { attempts: 1, dueAt: at(2_000), reason: 'TooManyRequests' });
    expect(await outboxRows(prisma)).toEqual([
      expect.objectContaining({
        attempts: 1,
        due_at: at(2_000),
        claimed_until: null,
        last_error: 'TooManyRequests',
      }),
    ]);
    expect(await outbox.claimDue({ limit: 1, leaseMs: 30_000, now: at(1_999) })).toEqual([]);
    expect(await outbox.claimDue({ limit: 1, leaseMs: 30_000, now: at(2_000) })).toHaveLength(1);
  });

  it.skipIf(testDatabaseKind !== 'postgresql')(
    'deletes the row when a change commits a newer unclaimed row during the release (unique violation)',
    async () => {
      const { prisma } = database;
      const { pushTokens } = await passWithDevices(database, { count: 1, now: t0 });
      const [claim] = await outbox.claimDue({ limit: 1, leaseMs: 30_000, now: t0 });
      if (!claim) throw new Error('nothing claimed');
      const change = new pg.Client({ connectionString: database.url });
      await change.connect();
      try {
        await change.query('BEGIN');
        await change.query('INSERT INTO push_outbox (push_token, pass_type_identifier) VALUES ($1, $2)', [
          pushTokens[0],
          passType,
        ]);
        // The release's update waits on the change's uncommitted index entry, then sees it committed.
        const release = outbox.release(claim, { attempts: 0, dueAt: t0 });
        await new Promise((resolve) => setTimeout(resolve, 200));
        await change.query('COMMIT');
        await release;
      } finally {
        await change.end();
      }
      const rows = await outboxRows(prisma);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.id).not.toBe(claim.id);
    },
  );
});

describe('recordFailure and failureCounts', () => {
  it('moves the row to push_failures with a hash of the token, and counts failures by reason', async () => {
    const { prisma } = database;
    const { pushTokens } = await passWithDevices(database, { count: 3, now: t0 });
    const claimed = await outbox.claimDue({ limit: 10, leaseMs: 30_000, now: t0 });
    const reasons = ['PayloadTooLarge', 'ServiceUnavailable', 'ServiceUnavailable'];
    for (const [i, push] of claimed.entries()) {
      expect(
        await outbox.recordFailure(push, { reason: reasons[i] ?? '', attempts: i + 1, failedAt: at(1) }),
      ).toBe(true);
    }
    expect(await outboxRows(prisma)).toEqual([]);
    expect(await outbox.failureCounts()).toEqual({ PayloadTooLarge: 1, ServiceUnavailable: 2 });
    const stored = await prisma.$queryRaw<Array<{ push_token_hash: string; pass_type_identifier: string }>>`
      SELECT push_token_hash, pass_type_identifier FROM push_failures ORDER BY push_token_hash`;
    const hashes = pushTokens.map(pushTokenHash).sort();
    expect(stored).toEqual(hashes.map((hash) => ({ push_token_hash: hash, pass_type_identifier: passType })));
  });
});

describe('removeUnregisteredToken (APNs 410)', () => {
  async function registrationsOf(deviceId: bigint) {
    const { prisma } = database;
    return prisma.registration.findMany({ where: { deviceId }, select: { passId: true } });
  }

  it('removes the token’s registrations for that pass type, and the device when it has none left', async () => {
    const { prisma } = database;
    const loyalty = await insertPass(prisma, passType, 'l1');
    const loyalty2 = await insertPass(prisma, passType, 'l2');
    const event = await insertPass(prisma, 'pass.com.example.event', 'e1');
    const both = await insertDevice(prisma, 'device-both');
    const onlyLoyalty = await insertDevice(prisma, 'device-loyalty');
    const other = await insertDevice(prisma, 'device-other');
    const registeredAt = t0;
    await register(prisma, { deviceId: both, passId: loyalty, pushToken: 'token-1', registeredAt });
    await register(prisma, { deviceId: both, passId: event, pushToken: 'token-1', registeredAt });
    await register(prisma, { deviceId: onlyLoyalty, passId: loyalty2, pushToken: 'token-1', registeredAt });
    await register(prisma, { deviceId: other, passId: loyalty, pushToken: 'token-2', registeredAt });

    expect(await registrations.removeUnregisteredToken('token-1', passType, at(1_000))).toEqual({
      registrations: 2,
      devices: 1,
    });
    expect(await registrationsOf(both)).toEqual([{ passId: event }]);
    expect(await prisma.device.findUnique({ where: { id: onlyLoyalty } })).toBeNull();
    expect(await registrationsOf(other)).toEqual([{ passId: loyalty }]);
  });

  it('removes only the registrations made with that token, not the same device’s others', async () => {
    const { prisma } = database;
    const first = await insertPass(prisma, passType, 'l1');
    const second = await insertPass(prisma, passType, 'l2');
    const device = await insertDevice(prisma, 'device');
    await register(prisma, { deviceId: device, passId: first, pushToken: 'token-1', registeredAt: t0 });
    await register(prisma, { deviceId: device, passId: second, pushToken: 'token-2', registeredAt: t0 });

    expect(await registrations.removeUnregisteredToken('token-2', passType, at(1_000))).toEqual({
      registrations: 1,
      devices: 0,
    });
    expect(await registrationsOf(device)).toEqual([{ passId: first }]);
  });

  it('keeps a registration made after the time APNs gave for the token becoming invalid', async () => {
    const { prisma } = database;
    const pass = await insertPass(prisma, passType, 'l1');
    const device = await insertDevice(prisma, 'device');
    await register(prisma, { deviceId: device, passId: pass, pushToken: 'token-1', registeredAt: at(5_000) });

    expect(await registrations.removeUnregisteredToken('token-1', passType, at(4_999))).toEqual({
      registrations: 0,
      devices: 0,
    });
    expect(await registrationsOf(device)).toEqual([{ passId: pass }]);
    expect(await registrations.removeUnregisteredToken('token-1', passType, at(5_000))).toEqual({
      registrations: 1,
      devices: 1,
    });
  });
});

describe('stats', () => {
  it('reports depth, due, claimed and the age of the oldest due row', async () => {
    await passWithDevices(database, { passTypeIdentifier: passType, serialNumber: 'a', count: 2, now: t0 });
    await passWithDevices(database, { serialNumber: 'b', count: 1, now: at(60_000) });
    expect(await outbox.stats(at(10_000))).toEqual({
      depth: 3,
      due: 2,
      claimed: 0,
      oldestDueAgeMs: 10_000,
    });
    await outbox.claimDue({ limit: 1, leaseMs: 30_000, now: at(10_000) });
    expect(await outbox.stats(at(10_000))).toEqual({
      depth: 3,
      due: 1,
      claimed: 1,
      oldestDueAgeMs: 10_000,
    });
    expect(await outbox.stats(at(40_001))).toMatchObject({ due: 2, claimed: 0 });
  });
});
