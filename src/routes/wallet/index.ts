import type { FastifyPluginAsync } from 'fastify';
import type { WalletRoutesDeps } from './deps.js';
import { latestPassRoute } from './latest-pass.js';
import { listUpdatableRoute } from './list-updatable.js';
import { logRoute } from './log.js';
import { registerRoute } from './register.js';
import { unregisterRoute } from './unregister.js';

/** Apple's PassKit web service: the five endpoints Wallet calls at the pass's webServiceURL, in Apple's order. */
export const walletRoutes: FastifyPluginAsync<WalletRoutesDeps> = async (app, deps) => {
  await app.register(registerRoute, deps);
  await app.register(listUpdatableRoute, deps);
  await app.register(latestPassRoute, deps);
  await app.register(unregisterRoute, deps);
  await app.register(logRoute, deps);
};
