import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { requireApplePassToken, wrongTokenError } from '../../wallet/authentication.js';
import { registerDevice } from '../../wallet/registrations.js';
import { bodyErrors, commonErrors, errorResponses, walletDoc } from '../route-docs.js';
import type { WalletRoutesDeps } from './deps.js';
import { emptyObject, pushTokenBody, registrationParams, registrationPath } from './schemas.js';

/** Apple's "Register a pass for update notifications": 201 new, 200 already registered. */
export const registerRoute: FastifyPluginAsync<WalletRoutesDeps> = async (fastify, deps) => {
  fastify.withTypeProvider<ZodTypeProvider>().post(
    registrationPath,
    {
      bodyLimit: 16 * 1024,
      schema: {
        ...walletDoc('registerDevice', 'Register a device for update notifications of a pass', {
          authenticated: true,
        }),
        params: registrationParams,
        body: pushTokenBody,
        response: {
          200: emptyObject.meta({ description: 'Already registered: the push token is updated' }),
          201: emptyObject.meta({ description: 'Registered' }),
          ...errorResponses(400, 401, ...bodyErrors, ...commonErrors),
        },
      },
    },
    async (request, reply) => {
      const { deviceLibraryIdentifier, ...key } = request.params;
      const authenticationToken = requireApplePassToken(request.headers.authorization);
      const registered = await registerDevice(deps, {
        deviceLibraryIdentifier,
        pushToken: request.body.pushToken,
        key,
        authenticationToken,
      });
      if (!registered) throw wrongTokenError();
      return reply.code(registered.created ? 201 : 200).send({});
    },
  );
};
