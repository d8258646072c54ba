import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { parseUpdateTag } from '../../passes/versions.js';
import { listUpdatablePasses } from '../../wallet/registrations.js';
import { commonErrors, errorResponses, noBody, walletDoc } from '../route-docs.js';
import type { WalletRoutesDeps } from './deps.js';
import { deviceParams, serialNumbersResponse, updatableQuery } from './schemas.js';

/**
 * Apple's "Get the list of updatable passes": the serial numbers of passes changed since passesUpdatedSince. No
 * Authorization header: Apple makes the device library identifier the shared secret here. 204 when there is
 * nothing (also for an unknown device).
 */
export const listUpdatableRoute: FastifyPluginAsync<WalletRoutesDeps> = async (fastify, deps) => {
  fastify.withTypeProvider<ZodTypeProvider>().get(
    '/v1/devices/:deviceLibraryIdentifier/registrations/:passTypeIdentifier',
    {
      schema: {
        ...walletDoc('listUpdatablePasses', 'The serial numbers of passes updated since a lastUpdated tag', {
          authenticated: false,
          description: 'No Authorization: Apple makes the device library identifier the shared secret.',
        }),
        params: deviceParams,
        querystring: updatableQuery,
        response: {
          200: serialNumbersResponse.meta({
            description: 'The passes updated since the tag, and the new tag',
          }),
          204: noBody('Nothing updated, or an unknown device'),
          ...errorResponses(400, ...commonErrors),
        },
      },
    },
    async (request, reply) => {
      const { deviceLibraryIdentifier, passTypeIdentifier } = request.params;
      const since = request.query.passesUpdatedSince
        ? parseUpdateTag(request.query.passesUpdatedSince)
        : undefined;
      const updatable = await listUpdatablePasses(deps, deviceLibraryIdentifier, passTypeIdentifier, since);
      if (!updatable) return reply.code(204).send();
      return reply.code(200).send(updatable);
    },
  );
};
