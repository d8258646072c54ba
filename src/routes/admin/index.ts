import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Role } from '../../config.js';
import { UnauthorizedError } from '../../errors.js';
import { secretsEqual } from '../../passes/tokens.js';
import { bulkRoutes } from './bulk.js';
import { deliveryRoutes } from './delivery.js';
import type { AdminDeps } from './deps.js';
import { identityRoutes } from './identities.js';
import { passRoutes } from './passes.js';
import { pkpassRoute } from './pkpass.js';
import { templateRoutes } from './templates.js';

/**
 * The admin API: `Authorization: Bearer $ADMIN_TOKEN` on every route. Its JSON routes are the `api` role's, the
 * signed .pkpass the `downloads` role's.
 */
export const adminRoutes: FastifyPluginAsync<AdminDeps & { roles: ReadonlySet<Role> }> = async (
  app,
  options,
) => {
  const { roles, ...deps } = options;
  // On each route below (this plugin's scope only: the download link route, download.ts, takes no token), after the
  // hooks that src/app.ts registered before this plugin: route hooks run after scope hooks, so as a hook of this
  // scope it would run first. After them, a wrong token is counted by the request limit, and while an address is
  // blocked from guessing the admin token (src/plugins/app/failed-auth.ts) it gets the same 429 whatever it sends.
  app.addHook('onRoute', (route) => {
    route.onRequest = [...(route.onRequest === undefined ? [] : [route.onRequest].flat()), checkAdminToken];
  });
  async function checkAdminToken(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (!match?.[1] || !secretsEqual(match[1], deps.adminToken)) {
      reply.header('www-authenticate', 'Bearer');
      throw new UnauthorizedError('Missing or wrong admin token (Authorization: Bearer $ADMIN_TOKEN)');
    }
    // Admin answers carry pass contents and links: never cache them.
    reply.header('cache-control', 'no-store');
  }
  if (roles.has('api')) {
    await app.register(passRoutes, deps);
    await app.register(bulkRoutes, deps);
    await app.register(templateRoutes, deps);
    await app.register(identityRoutes, deps);
    await app.register(deliveryRoutes, deps);
  }
  if (roles.has('downloads')) await app.register(pkpassRoute, deps);
};
