import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { findPass, getSignedBundle } from '../../passes/passes.js';
import { parseHttpDate } from '../../passes/versions.js';
import { authenticatePass, wrongTokenError } from '../../wallet/authentication.js';
import type { PassCredentials } from '../../wallet/known-passes.js';
import {
  commonErrors,
  errorResponses,
  noBody,
  pkpassResponse,
  responseHeaders,
  walletDoc,
} from '../route-docs.js';
import { credentialsFinder, type WalletRoutesDeps } from './deps.js';
import { passParams } from './schemas.js';

const pkpassContentType = 'application/vnd.apple.pkpass';

/** Devices must always revalidate: the pass may change at any time. */
const passCacheControl = 'no-cache';

/**
 * True when If-Modified-Since is at or after the pass's Last-Modified. Wallet sends back the Last-Modified it got, so
 * the usual case is the very same text, which needs no date parsing.
 */
function notModifiedSince(
  pass: Pick<PassCredentials, 'lastModified' | 'lastModifiedHttp'>,
  ifModifiedSince: string | undefined,
): boolean {
  if (ifModifiedSince === pass.lastModifiedHttp) return true;
  const since = parseHttpDate(ifModifiedSince);
  return since !== undefined && pass.lastModified.getTime() <= since.getTime();
}

/**
 * Apple's "Get the latest version of a pass": the signed bundle, or 304 when If-Modified-Since is at or after the
 * current version's Last-Modified.
 */
export const latestPassRoute: FastifyPluginAsync<WalletRoutesDeps> = async (fastify, deps) => {
  const { bundleCache } = deps;
  const findCredentials = credentialsFinder(deps);
  fastify.withTypeProvider<ZodTypeProvider>().get(
    '/v1/passes/:passTypeIdentifier/:serialNumber',
    {
      schema: {
        ...walletDoc('getLatestPass', 'The latest version of a pass', { authenticated: true }),
        params: passParams,
        response: {
          200: pkpassResponse({ 'last-modified': responseHeaders.lastModified }),
          304: noBody('Not modified since If-Modified-Since', {
            'last-modified': responseHeaders.lastModified,
          }),
          ...errorResponses(400, 401, ...commonErrors),
        },
      },
    },
    async (request, reply) => {
      const pass = await authenticatePass(findCredentials, request.params, request.headers.authorization);
      reply.header('cache-control', passCacheControl);
      if (notModifiedSince(pass, request.headers['if-modified-since'])) {
        return reply.code(304).header('last-modified', pass.lastModifiedHttp).send();
      }
      // The version is the database's as of this request (known-passes.ts); memory answers only for exactly it.
      let bundle = bundleCache.get(pass.id, pass.version);
      let lastModified = pass.lastModifiedHttp;
      if (!bundle) {
        const stored = await findPass(deps, request.params);
        if (!stored) throw wrongTokenError();
        bundle = await getSignedBundle(deps, stored);
        lastModified = stored.lastModified.toUTCString();
      }
      return reply
        .code(200)
        .header('last-modified', lastModified)
        .header('content-type', pkpassContentType)
        .send(bundle);
    },
  );
};
