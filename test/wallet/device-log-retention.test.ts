import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { deleteDueDeviceLogs, startDeviceLogRetention } from '../../src/wallet/device-log-retention.js';
import { openTestDatabase } from '../support/database.js';

const now = new Date('2026-06-01T12:00:00.000Z');
const clock = { now: () => now };
const daysAgo = (days: number) => new Date(now.getTime() - days * 24 * 3600 * 1000);

let database: Database;

beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(async () => {
  await database?.close();
});
beforeEach(async () => {
  await database.prisma.$executeRaw`TRUNCATE device_logs`;
});

const deviceLogs = () => database.repositories.deviceLogs;

async function storedMessages(): Promise<string[]> {
  const rows = await database.prisma.deviceLog.findMany({ orderBy: { id: 'asc' } });
  return rows.map((row) => row.message);
}

async function storeNumbered(count: number, createdAt: Date, prefix = 'm') {
  await deviceLogs().store(
    Array.from({ length: count }, (_, i) => `${prefix}${i}`),
    createdAt,
  );
}

describe('device log retention', () => {
  it('deletes the messages older than the retention period, in batches, and keeps the others', async () => {
    await storeNumbered(25, daysAgo(40), 'old');
    await storeNumbered(3, daysAgo(29), 'recent');
    const deleted = await deleteDueDeviceLogs({
      deviceLogs: deviceLogs(),
      settings: { retentionDays: 30, maxRows: 1000 },
      clock,
      batchSize: 10,
    });
    expect(deleted).toEqual({ expired: 25, beyondCap: 0 });
    expect(await storedMessages()).toEqual(['recent0', 'recent1', 'recent2']);
  });

  it('keeps the newest maxRows messages and deletes the oldest beyond them', async () => {
    await storeNumbered(130, daysAgo(1));
    const deleted = await deleteDueDeviceLogs({
      deviceLogs: deviceLogs(),
      settings: { retentionDays: 30, maxRows: 50 },
      clock,
      batchSize: 30,
    });
    expect(deleted).toEqual({ expired: 0, beyondCap: 80 });
    expect(await storedMessages()).toEqual(Array.from({ length: 50 }, (_, i) => `m${i + 80}`));
    // Nothing more is due.
    const again = await deleteDueDeviceLogs({
      deviceLogs: deviceLogs(),
      settings: { retentionDays: 30, maxRows: 50 },
      clock,
    });
    expect(again).toEqual({ expired: 0, beyondCap: 0 });
  });

  it('shares the work when several instances delete at the same time, and never deletes more', async () => {
    await storeNumbered(300, daysAgo(1));
    const options = {
      deviceLogs: deviceLogs(),
      settings: { retentionDays: 30, maxRows: 100 },
      clock,
      batchSize: 20,
    };
    const results = await Promise.all([1, 2, 3].map(() => deleteDueDeviceLogs(options)));
    expect(results.reduce((sum, result) => sum + result.beyondCap, 0)).toBe(200);
    expect(await storedMessages()).toEqual(Array.from({ length: 100 }, (_, i) => `m${i + 200}`));
  });

  it('runs at start and then every interval as a job, until stopped', async () => {
    await storeNumbered(5, daysAgo(31), 'old');
    const retention = startDeviceLogRetention({
      deviceLogs: deviceLogs(),
      settings: { retentionDays: 30, maxRows: 3 },
      clock,
      log: pino({ level: 'silent' }),
      intervalMs: 50,
    });
    try {
      await expect.poll(storedMessages, { timeout: 5000, interval: 20 }).toEqual([]);
      // Stored after the first run: the next run deletes beyond the cap.
      await storeNumbered(5, daysAgo(1));
      await expect.poll(storedMessages, { timeout: 5000, interval: 20 }).toEqual(['m2', 'm3', 'm4']);
    } finally {
      await retention.stop();
    }
    await storeNumbered(5, daysAgo(40), 'after');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await storedMessages()).toHaveLength(8);
  });
});
