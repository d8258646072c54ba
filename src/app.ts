import Fastify from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { downloadLinks } from './admin/download-links.js';
import {
  allRoles,
  type ConnectionLimits,
  defaultConnectionLimits,
  defaultDeviceLogs,
  defaultRateLimits,
  type RateLimitSettings,
  type Role,
  type TrustProxy,
} from './config.js';
import type { Database } from './db/database.js';
import type { Logger } from './logger.js';
import { type OpsDeps, withOps } from './ops/ops.js';
import { createReadiness } from './ops/readiness.js';
import { createBundleCache } from './passes/bundle-cache.js';
import type { PassesDeps } from './passes/passes.js';
import { AccessLog } from './plugins/app/access-log.js';
import { clientErrors, errorHandlerPlugin, frameworkErrors } from './plugins/app/error-handler.js';
import { failedAuthThrottling } from './plugins/app/failed-auth.js';
import { gracefulClosePlugin } from './plugins/app/graceful-close.js';
import { metricsPlugin } from './plugins/app/metrics.js';
import { requestIdFor, requestIdPlugin } from './plugins/app/request-id.js';
import { securityHeadersPlugin } from './plugins/app/security-headers.js';
import { requestLimits } from './plugins/external/rate-limit.js';
import { swaggerPlugin } from './plugins/external/swagger.js';
import { downloadRoute } from './routes/admin/download.js';
import { adminRoutes } from './routes/admin/index.js';
import { opsRoutes } from './routes/ops.js';
import { walletRoutes } from './routes/wallet/index.js';
import { createKnownPasses } from './wallet/known-passes.js';

export interface AppDeps extends PassesDeps {
  database: Pick<Database, 'passChanges'>;
  log: Logger;
  /** Metrics, readiness parts, METRICS_PORT (src/ops/ops.ts). */
  ops?: OpsDeps;
  adminToken: string;
  publicUrl: string;
  downloadLinkTtlSeconds: number;
  /** TRUST_PROXY: whose X-Forwarded-For gives the client address (rate limits, logs). Unset: nobody's. */
  trustProxy?: TrustProxy;
  /** Per-address request and failed-authentication limits; unset, the production defaults. */
  rateLimits?: RateLimitSettings;
  /** The bulk runner's wake (src/passes/bulk.ts): POST /admin/passes/bulk starts its job at once. */
  wakeBulkRunner?: (() => void) | undefined;
  /** ROLES: which routes this instance serves (src/config.ts); unset, all. */
  roles?: ReadonlySet<Role>;
  /** DOCS_ENABLED: serve /docs and /docs/json; unset, served. */
  docsEnabled?: boolean;
  /** The HTTP server's timeouts and connection cap; unset, the production defaults. */
  connections?: ConnectionLimits;
  /** DEVICE_LOG_REQUESTS_PER_MINUTE: POST /v1/log's own limit per address; unset, the production default. */
  deviceLogRequestsPerMinute?: number;
}

/**
 * The app as fastify/demo lays one out: other people's plugins (docs, request limits), then ours (hooks every request
 * passes, each a fastify-plugin), then the routes, which get what they use as their plugin options. The plugins
 * come first because their hooks and collectors apply to the routes registered after them.
 */
export async function buildApp(appDeps: AppDeps) {
  // This app's metrics registry, and the passes service's signing and bundle cache observers feeding it.
  const deps = withOps(appDeps);
  const rateLimits = deps.rateLimits ?? defaultRateLimits;
  const roles = deps.roles ?? new Set(allRoles);
  const maxParamLength = 1024;
  const connections = deps.connections ?? defaultConnectionLimits;
  const app = Fastify({
    loggerInstance: deps.log,
    // One access line per request instead of Fastify's two (src/plugins/app/access-log.ts).
    logController: new AccessLog(deps.log),
    // Identifiers may be up to 256 characters each; the default 100-character limit on params is too short.
    routerOptions: { maxParamLength },
    // The router's own errors (bad percent-encoding, a segment over maxParamLength) in the one error body shape.
    frameworkErrors: frameworkErrors({ maxParamLength }),
    // What Node's HTTP parser refuses (a slow client's 408, oversized headers), in the same body shape.
    clientErrorHandler: clientErrors,
    bodyLimit: 64 * 1024,
    trustProxy: deps.trustProxy ?? false,
    // x-request-id when the client sent a sane one, else a UUID (src/plugins/app/request-id.ts).
    requestIdHeader: false,
    genReqId: requestIdFor,
    // close() (SIGTERM): the listener stops accepting, idle keep-alive connections are closed, requests in
    // flight finish; a request that still arrives on an open connection is answered 503 without running its
    // handler (src/plugins/app/graceful-close.ts). Not forceCloseConnections: true, which would cut requests in
    // flight.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // A client that sends nothing, or a byte now and then, is answered 408 and cut off (Node's own 408, in Fastify's
    // JSON error shape) once its headers or its whole request take too long; an idle keep-alive connection is
    // closed after keepAliveTimeout, and any connection without traffic after connectionTimeout (src/config.ts).
    requestTimeout: connections.requestTimeoutMs,
    keepAliveTimeout: connections.keepAliveTimeoutMs,
    connectionTimeout: connections.idleTimeoutMs,
    http: {
      headersTimeout: connections.headersTimeoutMs,
      // How often Node looks for requests past the two timeouts (30 s by default, which would let a slow client
      // stay that much longer): a quarter of the headers timeout, so no client overstays by more than that.
      connectionsCheckingInterval: connections.headersTimeoutMs / 4,
    },
  });
  // Connections beyond the cap are closed as they arrive, so that idle ones cannot use up the process's file
  // descriptors (which its database connections and files need too) before the timeouts above close them.
  app.server.maxConnections = connections.maxConnections;
  // Node's 'drop' event: each connection closed that way is counted, so an operator sees the cap being reached.
  app.server.on('drop', () => deps.ops.metrics.observeDroppedConnection());
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Every body this API takes is JSON: anything else is 415, not a string handed to validation.
  app.removeContentTypeParser('text/plain');

  await app.register(swaggerPlugin, { publicUrl: deps.publicUrl, enabled: deps.docsEnabled ?? true });
  await app.register(requestLimits, {
    perMinute: rateLimits.perMinute,
    perDevicePerMinute: rateLimits.perDevicePerMinute,
    perPassPerMinute: rateLimits.perPassPerMinute,
  });

  await app.register(errorHandlerPlugin);
  await app.register(requestIdPlugin);
  await app.register(securityHeadersPlugin);
  await app.register(gracefulClosePlugin);
  await app.register(metricsPlugin, { metrics: deps.ops.metrics });
  await app.register(failedAuthThrottling, {
    authFailuresPerMinute: rateLimits.authFailuresPerMinute,
    clock: deps.clock,
  });

  const readiness = createReadiness({
    health: deps.repositories.health,
    identity: deps.identities.primary().signing,
    clock: deps.clock,
    log: deps.log,
    checkMigrations: deps.ops.checkMigrations,
    pushWorker: deps.ops.pushWorker,
    runsPushWorker: roles.has('workers'),
  });
  const links = downloadLinks({
    publicUrl: deps.publicUrl,
    adminToken: deps.adminToken,
    ttlSeconds: deps.downloadLinkTtlSeconds,
  });
  await app.register(opsRoutes, {
    readiness,
    metrics: deps.ops.metrics,
    metricsOnMainPort: deps.ops.metricsOnMainPort ?? true,
  });
  await app.register(walletRoutes, {
    ...deps,
    roles,
    // Counted apart from the rest of /v1, and never more than the general limit allows.
    deviceLogRequestsPerMinute: Math.min(
      deps.deviceLogRequestsPerMinute ?? defaultDeviceLogs.requestsPerMinute,
      rateLimits.perMinute || Number.POSITIVE_INFINITY,
    ),
    knownPasses: createKnownPasses(deps.database.passChanges),
    bundleCache: deps.bundleCache ?? createBundleCache(),
  });
  await app.register(adminRoutes, { ...deps, roles, links });
  if (roles.has('downloads')) await app.register(downloadRoute, { ...deps, links });
  return app;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
