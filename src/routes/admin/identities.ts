import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { NotFoundError } from '../../errors.js';
import type { IdentityUpload, PassTypeIdentity } from '../../signing/identities.js';
import { daysLeft, isExpired } from '../../signing/identity.js';
import { adminDoc, bodyErrors, commonErrors, errorResponses, noBody } from '../route-docs.js';
import type { AdminDeps } from './deps.js';
import { identitiesAnswer, identityParams, identityUploadBody, identityView } from './schemas.js';

/**
 * The pass type identities passes are signed and pushed with: added, rotated and removed here, with their private
 * keys stored sealed (src/signing/identities.ts). Answers say what each is for and when it expires, never a key.
 */
export const identityRoutes: FastifyPluginAsync<AdminDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { identities, clock } = deps;
  const view = (identity: PassTypeIdentity) => viewOf(identity, clock.now());
  const identityPath = '/admin/identities/:passTypeIdentifier';

  app.get(
    '/admin/identities',
    {
      schema: {
        ...adminDoc(
          'listIdentities',
          'List the pass type identities and their expiry',
          'Renew a certificate at Apple from 30 days before it expires; once it has, its passes are served as last ' +
            'signed and creating or changing one is answered 409 certificate_expired.',
        ),
        response: {
          200: identitiesAnswer.meta({ description: 'The identities' }),
          ...errorResponses(401, ...commonErrors),
        },
      },
    },
    async () => ({ identities: identities.list().map(view) }),
  );

  app.get(
    identityPath,
    {
      schema: {
        ...adminDoc('getIdentity', 'Read a pass type identity (never its key)'),
        params: identityParams,
        response: {
          200: identityView.meta({ description: 'The identity' }),
          ...errorResponses(400, 401, 404, ...commonErrors),
        },
      },
    },
    async (request) => {
      const identity = await identities.find(request.params.passTypeIdentifier);
      if (!identity) throw new NotFoundError(`No identity ${request.params.passTypeIdentifier}`);
      return view(identity);
    },
  );

  app.post(
    '/admin/identities',
    {
      schema: {
        ...adminDoc(
          'addIdentity',
          'Add a pass type identity',
          'Its pass type and team identifiers are read from the certificate (subject UID and OU). Needs ' +
            'IDENTITY_ENCRYPTION_KEY, with which the private key is stored encrypted (409 without it).',
        ),
        body: identityUploadBody,
        response: {
          201: identityView.meta({ description: 'Added' }),
          ...errorResponses(400, 401, 409, ...bodyErrors, ...commonErrors),
        },
      },
    },
    async (request, reply) => {
      const { identity } = await identities.save(uploadOf(request.body), 'new');
      return reply.code(201).send(view(identity));
    },
  );

  app.put(
    identityPath,
    {
      schema: {
        ...adminDoc(
          'rotateIdentity',
          "Rotate an identity's certificate",
          'A new certificate (and key) for the same pass type identifier and team, e.g. before the old one ' +
            'expires; a configured identity is taken over by the stored one. Every instance signs new versions with ' +
            'it within seconds, without a restart; bundles signed before stay as they are.',
        ),
        params: identityParams,
        body: identityUploadBody,
        response: {
          200: identityView.meta({ description: 'Rotated' }),
          ...errorResponses(400, 401, 404, 409, ...bodyErrors, ...commonErrors),
        },
      },
    },
    async (request) => {
      const { identity } = await identities.save(uploadOf(request.body), request.params.passTypeIdentifier);
      return view(identity);
    },
  );

  app.delete(
    identityPath,
    {
      schema: {
        ...adminDoc(
          'removeIdentity',
          'Remove an identity added through the API',
          'Refused (409) while passes of it remain, unless a configured identity of the same pass type ' +
            'identifier takes its place again.',
        ),
        params: identityParams,
        response: { 204: noBody('Removed'), ...errorResponses(400, 401, 404, 409, ...commonErrors) },
      },
    },
    async (request, reply) => {
      await identities.remove(request.params.passTypeIdentifier);
      return reply.code(204).send();
    },
  );
};

function uploadOf(body: z.output<typeof identityUploadBody>): IdentityUpload {
  const { certificate, privateKey, p12, passphrase, wwdr, apns } = body;
  return {
    // The body's refinement made sure that without p12 both PEMs are there.
    signer:
      p12 !== undefined
        ? { p12: Buffer.from(p12, 'base64') }
        : { certificate: certificate ?? '', privateKey: privateKey ?? '' },
    passphrase,
    wwdr,
    ...(apns?.auth === 'token'
      ? {
          apnsToken: { keyPem: apns.key, keyId: apns.keyId, ...(apns.teamId ? { teamId: apns.teamId } : {}) },
        }
      : {}),
  };
}

function viewOf(identity: PassTypeIdentity, now: Date): z.input<typeof identityView> {
  const { signing, apnsToken } = identity;
  return {
    passTypeIdentifier: signing.passTypeIdentifier,
    teamIdentifier: signing.teamIdentifier,
    source: identity.source,
    isDevelopment: signing.isDevelopment,
    notAfter: signing.notAfter.toISOString(),
    daysLeft: daysLeft(signing, now),
    expired: isExpired(signing, now),
    certificateSha256: identity.certificateSha256,
    apns: apnsToken
      ? { auth: 'token', keyId: apnsToken.keyId, teamId: apnsToken.teamId }
      : { auth: identity.source === 'api' ? 'certificate' : 'configured' },
  };
}
