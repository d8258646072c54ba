import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { addressKey } from '../../plugins/limit-keys.js';
import { storeDeviceLogs } from '../../wallet/registrations.js';
import { bodyErrors, commonErrors, errorResponses, walletDoc } from '../route-docs.js';
import type { WalletRoutesDeps } from './deps.js';
import { emptyObject, logEntriesBody } from './schemas.js';

/*
 * Apple sets no size for a LogEntries body. Wallet's messages are one-line errors of a few hundred bytes, a few at a
 * time, so 16 KB is ample; more is answered 413 before it is read. POST /v1/log takes no credentials, so anyone can
 * call it: what it stores is also capped in count per request (logEntriesBody), in requests per address (the route's
 * own request limit), and in total (src/wallet/device-log-retention.ts deletes the oldest).
 */
export const deviceLogBodyLimit = 16 * 1024;

/** Apple's "Log a message": stored, readable through GET /admin/logs. */
export const logRoute: FastifyPluginAsync<WalletRoutesDeps> = async (fastify, deps) => {
  fastify.withTypeProvider<ZodTypeProvider>().post(
    '/v1/log',
    {
      bodyLimit: deviceLogBodyLimit,
      // @fastify/rate-limit (src/plugins/external/rate-limit.ts) with this route's own budget per address, counted
      // on arrival; a device whose messages are refused loses only those messages.
      config: {
        rateLimit: {
          max: deps.deviceLogRequestsPerMinute,
          timeWindow: 60_000,
          keyGenerator: (request) => addressKey(request.ip),
          // Addresses remembered, least recently seen dropped first, as for the general limit (a route's own
          // store does not inherit its size).
          cache: 10_000,
        },
      },
      schema: {
        ...walletDoc('logMessages', 'Log messages from a device', { authenticated: false }),
        body: logEntriesBody,
        response: {
          200: emptyObject.meta({ description: 'Logged' }),
          ...errorResponses(400, ...bodyErrors, ...commonErrors),
        },
      },
    },
    async (request, reply) => {
      const { logs } = request.body;
      await storeDeviceLogs(deps, logs);
      // One line per request, without the messages (GET /admin/logs shows them): a client cannot flood the log.
      const bytes = logs.reduce((sum, message) => sum + Buffer.byteLength(message), 0);
      request.log.warn({ deviceLogs: { messages: logs.length, bytes } }, 'Wallet device logs stored');
      return reply.code(200).send({});
    },
  );
};
