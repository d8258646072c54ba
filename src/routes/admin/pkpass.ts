import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { getPass, getSignedBundle } from '../../passes/passes.js';
import { adminDoc, commonErrors, errorResponses, pkpassResponse, responseHeaders } from '../route-docs.js';
import { passParams } from '../wallet/schemas.js';
import type { AdminDeps } from './deps.js';
import { adminPassPath } from './schemas.js';

/** A pass's signed .pkpass (a download, so the `downloads` role serves it). */
export const pkpassRoute: FastifyPluginAsync<AdminDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    `${adminPassPath}/pkpass`,
    {
      schema: {
        ...adminDoc('getPassBundle', 'Download the signed .pkpass'),
        params: passParams,
        response: {
          200: pkpassResponse({ 'last-modified': responseHeaders.lastModified }),
          ...errorResponses(400, 401, 404, ...commonErrors),
        },
      },
    },
    async (request, reply) => {
      const pass = await getPass(deps, request.params);
      return reply
        .type('application/vnd.apple.pkpass')
        .header('last-modified', pass.lastModified.toUTCString())
        .send(await getSignedBundle(deps, pass));
    },
  );
};
