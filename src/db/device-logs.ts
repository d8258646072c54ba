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
}

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
  };
}
