import type { FastifyPluginAsync } from 'fastify';
import { opsDoc } from '../docs/route-docs.js';
import type { Readiness } from './readiness.js';

/*
 * Liveness (the process answers) and readiness (every part this instance needs works). Load balancers probe
 * these every few seconds, so their request lines are logged at warn level and above only.
 */
export const healthRoutes =
  (deps: { readiness: Readiness }): FastifyPluginAsync =>
  async (app) => {
    app.get('/healthz', { logLevel: 'warn', schema: opsDoc('Liveness: the process answers') }, async () => ({
      status: 'ok',
    }));
    app.get(
      '/readyz',
      { logLevel: 'warn', schema: opsDoc('Readiness: 503 while a part it needs fails') },
      async (_request, reply) => {
        const { ready, failing } = await deps.readiness.check();
        if (ready) return { status: 'ready' };
        return reply.code(503).send({ status: 'unavailable', failing });
      },
    );
  };
