/*
 * What operations needs from the app: this app's metrics, the readiness parts, whether /metrics is on the main port,
 * and the signing and bundle cache observers handed to the passes service.
 */
import type { Database } from '../db/database.js';
import type { MigrationStatus } from '../db/migrations.js';
import type { Logger } from '../logger.js';
import type { PassesDeps } from '../passes/passes.js';
import { createMetrics, type Metrics } from './metrics.js';

export interface OpsDeps {
  /** This app's metrics. server.ts makes them first, for the push worker to report to; else the app makes its own. */
  metrics?: Metrics;
  /** False when METRICS_PORT serves /metrics on a port of its own: then the main port does not. */
  metricsOnMainPort?: boolean;
  /** Readiness: migrationStatus() of the database (see ReadinessOptions). */
  checkMigrations?: () => Promise<MigrationStatus>;
  /** Readiness: this instance's push worker (none when its roles leave out `workers`). */
  pushWorker?: { readonly running: boolean } | undefined;
}

type DepsWithOps = PassesDeps & {
  log: Logger;
  ops?: OpsDeps | undefined;
  database?: Pick<Database, 'passChanges'>;
};

/** The deps with this app's metrics made and the passes service's observers pointed at them. */
export function withOps<D extends DepsWithOps>(deps: D): D & { ops: OpsDeps & { metrics: Metrics } } {
  const metrics =
    deps.ops?.metrics ??
    createMetrics({
      repositories: deps.repositories,
      clock: deps.clock,
      log: deps.log,
      passChanges: deps.database?.passChanges,
      identities: deps.identities,
    });
  return {
    ...deps,
    ops: { ...deps.ops, metrics },
    observeSigning: (seconds: number) => {
      deps.observeSigning?.(seconds);
      metrics.observeSigning(seconds);
    },
    observeBundleCache: (result: 'hit' | 'miss') => {
      deps.observeBundleCache?.(result);
      metrics.observeBundleCache(result);
    },
  };
}
