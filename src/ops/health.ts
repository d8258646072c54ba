import type { FastifyPluginAsync } from 'fastify';
import type { PrismaClient } from '../db/database.js';

/** Liveness (the process answers) and readiness (the database answers). */
export const healthRoutes =
  (deps: { prisma: PrismaClient }): FastifyPluginAsync =>
  async (app) => {
    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (request, reply) => {
      try {
        await deps.prisma.$queryRaw`SELECT 1`;
        return { status: 'ready' };
      } catch (error) {
        request.log.warn({ err: error }, 'readiness check failed: database');
        return reply.code(503).send({ status: 'unavailable', failing: 'database' });
      }
    });
  };
