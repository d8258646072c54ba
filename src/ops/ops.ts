/*
 * Everything operations needs from the app, wired in one place: request ids echoed to the client, request
 * metrics by route pattern, /healthz and /readyz, /metrics (unless METRICS_PORT serves it), and the signing and
 * bundle cache observers handed to the passes service.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, RawServerDefault } from 'fastify';
import type { Database } from '../db/database.js';
import type { MigrationStatus } from '../db/migrations.js';
import { opsDoc } from '../docs/route-docs.js';
import type { Logger } from '../logger.js';
import type { PassesDeps } from '../passes/passes.js';
import { healthRoutes } from './health.js';
import { createMetrics, type Metrics, unmatchedRoute } from './metrics.js';
import { createReadiness } from './readiness.js';

export interface OpsDeps {
  /** This app's metrics. server.ts makes them first, for the push worker to report to; else the app makes its own. */
  metrics?: Metrics;
  /** False when METRICS_PORT serves /metrics on a port of its own: then the main port does not. */
  metricsOnMainPort?: boolean;
  /** Readiness: migrationStatus() of the database (see ReadinessOptions). */
  checkMigrations?: () => Promise<MigrationStatus>;
  /** Readiness: this instance's push worker. */
  pushWorker?: { readonly running: boolean };
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

/** Call on the root instance before the app's routes are registered, so the hooks cover every route. */
export async function registerOps(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
  deps: DepsWithOps & { ops: OpsDeps & { metrics: Metrics } },
): Promise<void> {
  const { metrics } = deps.ops;
  // Callback hooks, not async ones: no promise per hook per request.
  app.addHook('onRequest', (request, reply, done) => {
    // The id in every log line of the request, echoed so a client or proxy can quote it in a report.
    reply.header('x-request-id', request.id);
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(
      request.routeOptions.url ?? unmatchedRoute,
      request.method,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
    done();
  });
  const readiness = createReadiness({
    health: deps.repositories.health,
    identity: deps.identity,
    clock: deps.clock,
    log: deps.log,
    checkMigrations: deps.ops.checkMigrations,
    pushWorker: deps.ops.pushWorker,
  });
  await app.register(healthRoutes({ readiness }));
  if (deps.ops.metricsOnMainPort ?? true) {
    app.get('/metrics', { logLevel: 'warn', schema: opsDoc('Prometheus metrics') }, async (_request, reply) =>
      reply.type(metrics.contentType).send(await metrics.scrape()),
    );
  }
}
