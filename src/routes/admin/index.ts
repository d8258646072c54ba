import type { FastifyPluginAsync } from 'fastify';
import type { Role } from '../../config.js';
import { UnauthorizedError } from '../../errors.js';
import { secretsEqual } from '../../passes/tokens.js';
import { bulkRoutes } from './bulk.js';
import { deliveryRoutes } from './delivery.js';
import type { AdminDeps } from './deps.js';
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
  // Before the routes below, in this plugin's scope only: the download link route (download.ts) takes no token.
  app.addHook('onRequest', async (request, reply) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (!match?.[1] || !secretsEqual(match[1], deps.adminToken)) {
      reply.header('www-authenticate', 'Bearer');
      throw new UnauthorizedError('Missing or wrong admin token (Authorization: Bearer $ADMIN_TOKEN)');
    }
    // Admin answers carry pass contents and links: never cache them.
    reply.header('cache-control', 'no-store');
  });
  if (roles.has('api')) {
    await app.register(passRoutes, deps);
    await app.register(bulkRoutes, deps);
    await app.register(templateRoutes, deps);
    await app.register(deliveryRoutes, deps);
  }
  if (roles.has('downloads')) await app.register(pkpassRoute, deps);
};
