import type { PrismaClient } from './sql.js';

/** The database's own health and size, for readiness, doctor and the metrics. */
export interface HealthRepository {
  /** Resolves when the database answers a trivial statement; rejects (or hangs, on a dropped network) otherwise. */
  ping(): Promise<void>;
  /** How many passes and registrations there are. */
  counts(): Promise<{ passes: number; registrations: number }>;
}

export function createHealthRepository(db: { prisma: PrismaClient }): HealthRepository {
  const { prisma } = db;
  return {
    async ping() {
      await prisma.$queryRaw`SELECT 1`;
    },
    async counts() {
      const [row] = await prisma.$queryRaw<Array<{ passes: bigint; registrations: bigint }>>`
        SELECT (SELECT count(*) FROM passes) AS passes, (SELECT count(*) FROM registrations) AS registrations`;
      return { passes: Number(row?.passes ?? 0), registrations: Number(row?.registrations ?? 0) };
    },
  };
}
