import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { authenticatePass } from '../../wallet/authentication.js';
import { unregisterDevice } from '../../wallet/registrations.js';
import { commonErrors, errorResponses, walletDoc } from '../route-docs.js';
import { credentialsFinder, type WalletRoutesDeps } from './deps.js';
import { emptyObject, registrationParams, registrationPath } from './schemas.js';

/** Apple's "Unregister a pass for update notifications": 200 also when nothing was registered (200 on success). */
export const unregisterRoute: FastifyPluginAsync<WalletRoutesDeps> = async (fastify, deps) => {
  const findCredentials = credentialsFinder(deps);
  fastify.withTypeProvider<ZodTypeProvider>().delete(
    registrationPath,
    {
      schema: {
        ...walletDoc('unregisterDevice', 'Unregister a device', { authenticated: true }),
        params: registrationParams,
        response: {
          200: emptyObject.meta({ description: 'Unregistered (also when it was not registered)' }),
          ...errorResponses(400, 401, ...commonErrors),
        },
      },
    },
    async (request, reply) => {
      const { deviceLibraryIdentifier, ...key } = request.params;
      const pass = await authenticatePass(findCredentials, key, request.headers.authorization);
      await unregisterDevice(deps, deviceLibraryIdentifier, pass);
      return reply.code(200).send({});
    },
  );
};
