import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { type DownloadLinks, downloadPath } from '../../admin/download-links.js';
import { ForbiddenError } from '../../errors.js';
import { findPass, getSignedBundle, type PassesDeps } from '../../passes/passes.js';
import { commonErrors, downloadLinkDoc, errorResponses, pkpassResponse } from '../route-docs.js';
import { passParams } from '../wallet/schemas.js';
import { downloadQuery } from './schemas.js';

/** Serves a pass through a signed, expiring downloadUrl: no admin token, nothing but that one pass. */
export const downloadRoute: FastifyPluginAsync<PassesDeps & { links: DownloadLinks }> = async (
  fastify,
  deps,
) => {
  fastify.withTypeProvider<ZodTypeProvider>().get(
    downloadPath,
    {
      schema: {
        ...downloadLinkDoc(
          'downloadPass',
          "Download a pass through its downloadUrl (no token: the link's signature is the credential)",
        ),
        params: passParams,
        querystring: downloadQuery,
        response: { 200: pkpassResponse(), ...errorResponses(400, 403, 410, ...commonErrors) },
      },
    },
    async (request, reply) => {
      const { expires, signature } = request.query;
      deps.links.verify(request.params, expires, signature, deps.clock.now());
      const pass = await findPass(deps, request.params);
      if (!pass) throw new ForbiddenError('This download link is not valid');
      return reply
        .type('application/vnd.apple.pkpass')
        .header('content-disposition', `attachment; filename="pass.pkpass"`)
        .header('cache-control', 'private, no-store')
        .send(await getSignedBundle(deps, pass));
    },
  );
};
