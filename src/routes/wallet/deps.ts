import type { BundleCache } from '../../passes/bundle-cache.js';
import type { PassesDeps } from '../../passes/passes.js';
import type { FindCredentials } from '../../wallet/authentication.js';
import type { KnownPasses } from '../../wallet/known-passes.js';

/** What Apple's endpoints are given as their plugin options. */
export interface WalletRoutesDeps extends PassesDeps {
  /** Token, version and Last-Modified of passes, remembered until the database says they changed. */
  knownPasses: KnownPasses;
  /** Signed bundles of current versions, served from memory when it has the version asked for. */
  bundleCache: BundleCache;
  /** POST /v1/log's requests a minute per client address. */
  deviceLogRequestsPerMinute: number;
}

/** A pass's credentials, remembered or read. */
export const credentialsFinder =
  (deps: WalletRoutesDeps): FindCredentials =>
  (key) =>
    deps.knownPasses.find(key, () => deps.repositories.passes.readCredentials(key));
