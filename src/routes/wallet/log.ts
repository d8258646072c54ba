import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { storeDeviceLogs } from '../../wallet/registrations.js';
import { bodyErrors, commonErrors, errorResponses, walletDoc } from '../route-docs.js';
import type { WalletRoutesDeps } from './deps.js';
import { emptyObject, logEntriesBody } from './schemas.js';

/** Apple's "Log a message": logged and stored, readable through GET /admin/logs. */
export const logRoute: FastifyPluginAsync<WalletRoutesDeps> = async (fastify, deps) => {
  fastify.withTypeProvider<ZodTypeProvider>().post(
    '/v1/log',
    {
      bodyLimit: 256 * 1024,
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
      for (const message of logs) request.log.warn({ deviceLog: message }, 'Wallet device log');
      await storeDeviceLogs(deps, logs);
      return reply.code(200).send({});
    },
  );
};
