import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { type DownloadLinks, downloadPath } from '../../admin/download-links.js';
import { findPass, getSignedBundle, type PassesDeps } from '../../passes/passes.js';
import { commonErrors, downloadLinkDoc, errorResponses, pkpassResponse } from '../route-docs.js';
import { passParams } from '../wallet/schemas.js';
import { downloadQuery } from './schemas.js';

/** Serves a pass through a signed, expiring downloadUrl: no admin token, nothing but that one pass. */
export const downloadRoute: FastifyPluginAsync<PassesDeps & { links: DownloadLinks }> = async (
  fastify,
  deps,
) => {
  // Annotated: TypeScript narrows through an assertion method only on a declared type.
  const links: DownloadLinks = deps.links;
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
      // The pass first: the link is valid only for the pass it was signed for, not for a later one of that serial.
      const pass = await findPass(deps, request.params);
      links.verify(request.params, pass, request.query, deps.clock.now());
      return reply
        .type('application/vnd.apple.pkpass')
        .header('content-disposition', `attachment; filename="pass.pkpass"`)
        .header('cache-control', 'private, no-store')
        .send(await getSignedBundle(deps, pass));
    },
  );
};
