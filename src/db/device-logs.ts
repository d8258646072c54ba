import type { PrismaClient } from './sql.js';

export interface DeviceLog {
  message: string;
  createdAt: Date;
}

/** What Wallet sent to POST /v1/log. */
export interface DeviceLogsRepository {
  store(messages: readonly string[], createdAt: Date): Promise<void>;
  /** The newest `limit` messages, newest first. */
  latest(limit: number): Promise<DeviceLog[]>;
  /** Deletes at most `limit` messages stored before `cutoff`; returns how many it deleted. */
  deleteOlderThan(cutoff: Date, limit: number): Promise<number>;
  /** Deletes at most `limit` of the oldest messages beyond the newest `keep`; returns how many it deleted. */
  deleteAllButNewest(keep: number, limit: number): Promise<number>;
}

/*
 * The deletes take rows in batches, so that no statement holds many locks or runs long, and with SKIP LOCKED, so
 * that instances deleting at the same time neither wait for nor deadlock with each other: each takes rows the
 * others have not. Inserts lock no existing row, so POST /v1/log never waits for them either.
 */
export function createDeviceLogsRepository(db: { prisma: PrismaClient }): DeviceLogsRepository {
  const { prisma } = db;
  return {
    async store(messages, createdAt) {
      await prisma.deviceLog.createMany({ data: messages.map((message) => ({ message, createdAt })) });
    },
    async latest(limit) {
      const logs = await prisma.deviceLog.findMany({ orderBy: { id: 'desc' }, take: limit });
      return logs.map((log) => ({ message: log.message, createdAt: log.createdAt }));
    },
    // Through the created_at index.
    deleteOlderThan: (cutoff, limit) => prisma.$executeRaw`
      DELETE FROM device_logs WHERE id IN (
        SELECT id FROM device_logs WHERE created_at < ${cutoff}::timestamptz
        LIMIT ${limit} FOR UPDATE SKIP LOCKED)`,
    // Ids grow with every insert, so the newest `keep` are the highest ids; the boundary is read from the primary
    // key's index without touching the rows.
    deleteAllButNewest: (keep, limit) => prisma.$executeRaw`
      DELETE FROM device_logs WHERE id IN (
        SELECT id FROM device_logs
        WHERE id <= (SELECT id FROM device_logs ORDER BY id DESC OFFSET ${keep} LIMIT 1)
        ORDER BY id LIMIT ${limit} FOR UPDATE SKIP LOCKED)`,
  };
}
