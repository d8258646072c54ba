import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { daysLeft, isExpired } from '../../signing/identity.js';
import { adminDoc, commonErrors, errorResponses } from '../route-docs.js';
import type { AdminDeps } from './deps.js';
import { identitiesAnswer } from './schemas.js';

/** The pass type identities passes are signed with: what they are for and when they expire, never their keys. */
export const identityRoutes: FastifyPluginAsync<AdminDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    '/admin/identities',
    {
      schema: {
        ...adminDoc(
          'listIdentities',
          'List the signing identities and their expiry',
          'Renew a certificate at Apple from 30 days before it expires; once it has, its passes are served as last ' +
            'signed and creating or changing one is answered 409 certificate_expired.',
        ),
        response: {
          200: identitiesAnswer.meta({ description: 'The identities' }),
          ...errorResponses(401, ...commonErrors),
        },
      },
    },
    async () => {
      const { identity, clock } = deps;
      const now = clock.now();
      return {
        identities: [
          {
            passTypeIdentifier: identity.passTypeIdentifier,
            teamIdentifier: identity.teamIdentifier,
            isDevelopment: identity.isDevelopment,
            notAfter: identity.notAfter.toISOString(),
            daysLeft: daysLeft(identity, now),
            expired: isExpired(identity, now),
          },
        ],
      };
    },
  );
};
