import type { FastifyPluginAsync } from 'fastify';
import type { Role } from '../../config.js';
import type { WalletRoutesDeps } from './deps.js';
import { latestPassRoute } from './latest-pass.js';
import { listUpdatableRoute } from './list-updatable.js';
import { logRoute } from './log.js';
import { registerRoute } from './register.js';
import { unregisterRoute } from './unregister.js';

/**
 * Apple's PassKit web service: the five endpoints Wallet calls at the pass's webServiceURL, in Apple's order. The
 * latest pass is a download (the `downloads` role); the four JSON endpoints are the `api` role's.
 */
export const walletRoutes: FastifyPluginAsync<WalletRoutesDeps & { roles: ReadonlySet<Role> }> = async (
  app,
  options,
) => {
  const { roles, ...deps } = options;
  const api = roles.has('api');
  if (api) await app.register(registerRoute, deps);
  if (api) await app.register(listUpdatableRoute, deps);
  if (roles.has('downloads')) await app.register(latestPassRoute, deps);
  if (api) await app.register(unregisterRoute, deps);
  if (api) await app.register(logRoute, deps);
};
