import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { adminDoc, commonErrors, errorResponses } from '../route-docs.js';
import type { AdminDeps } from './deps.js';
import { logsAnswer, logsQuery, pushesAnswer } from './schemas.js';

/** What reaches devices and what they say: the push outbox and failures, and the device logs (POST /v1/log). */
export const deliveryRoutes: FastifyPluginAsync<AdminDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  // Push delivery: what waits in the outbox, and the pushes given up on, counted by APNs reason.
  app.get(
    '/admin/pushes',
    {
      schema: {
        ...adminDoc('getPushes', 'Push outbox depth and failed pushes by APNs reason'),
        response: {
          200: pushesAnswer.meta({ description: 'The outbox and the failures' }),
          ...errorResponses(401, ...commonErrors),
        },
      },
    },
    async () => ({
      outbox: await deps.repositories.outbox.stats(deps.clock.now()),
      failures: await deps.repositories.outbox.failureCounts(),
    }),
  );

  app.get(
    '/admin/logs',
    {
      schema: {
        ...adminDoc('listDeviceLogs', 'The latest device log messages (POST /v1/log)'),
        querystring: logsQuery,
        response: {
          200: logsAnswer.meta({ description: 'The latest messages, newest first' }),
          ...errorResponses(400, 401, ...commonErrors),
        },
      },
    },
    async (request) => {
      const logs = await deps.repositories.deviceLogs.latest(request.query.limit);
      return {
        logs: logs.map((log) => ({ message: log.message, createdAt: log.createdAt.toISOString() })),
      };
    },
  );
};
