import type { Database } from '../../db/database.js';
import type { BundleCache } from '../../passes/bundle-cache.js';
import type { PassesDeps } from '../../passes/passes.js';
import { type FindCredentials, readPassCredentials } from '../../wallet/authentication.js';
import type { KnownPasses } from '../../wallet/known-passes.js';

/** What Apple's endpoints are given as their plugin options. */
export interface WalletRoutesDeps extends PassesDeps {
  /** The driver path, for the statements Wallet's requests run. */
  database: Pick<Database, 'query'>;
  /** Token, version and Last-Modified of passes, remembered until the database says they changed. */
  knownPasses: KnownPasses;
  /** Signed bundles of current versions, served from memory when it has the version asked for. */
  bundleCache: BundleCache;
}

/** The services' deps of the Wallet endpoints: the routes' deps with the driver's query. */
export const walletServiceDeps = (deps: WalletRoutesDeps) => ({ ...deps, query: deps.database.query });

/** A pass's credentials, remembered or read. */
export const credentialsFinder =
  (deps: WalletRoutesDeps): FindCredentials =>
  (key) =>
    deps.knownPasses.find(key, () => readPassCredentials(deps.database.query, key));
