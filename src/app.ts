import sensible from '@fastify/sensible';
import Fastify, { type FastifyError } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import { downloadLinks } from './admin/download-links.js';
import { downloadRoute } from './admin/download-route.js';
import { adminRoutes } from './admin/routes.js';
import type { TrustProxy } from './config.js';
import type { Database } from './db/database.js';
import { registerDocs } from './docs/openapi.js';
import { ServiceError } from './errors.js';
import type { Logger } from './logger.js';
import { type OpsDeps, registerOps, withOps } from './ops/ops.js';
import {
  createRateLimits,
  defaultRateLimits,
  type RateLimitSettings,
  registerRateLimits,
} from './ops/rate-limits.js';
import { requestIdFor } from './ops/request-id.js';
import { createAccessLog, RequestLog } from './ops/request-log.js';
import { addSecurityHeaders } from './ops/security-headers.js';
import { createBundleCache } from './passes/bundle-cache.js';
import type { PassesDeps } from './passes/passes.js';
import { createKnownPasses } from './wallet/known-passes.js';
import { walletRoutes } from './wallet/routes.js';

export interface AppDeps extends PassesDeps {
  database: Pick<Database, 'query' | 'passChanges'>;
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
  wakeBulkRunner?: () => void;
}

/** The JSON body of every error answer: a stable code and a message that names the problem. */
export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
}

function validationMessage(error: FastifyError): string {
  if (!hasZodFastifySchemaValidationErrors(error)) return error.message;
  const where = error.validationContext ?? 'request';
  return error.validation
    .map((issue) => {
      const path = issue.instancePath.replace(/^\//, '').replaceAll('/', '.');
      return `${where}${path ? `.${path}` : ''}: ${issue.message}`;
    })
    .join('; ');
}

/** Maps every error to HTTP in one place: our ServiceErrors, Fastify's own 4xx, and anything else as 500. */
function errorBody(error: FastifyError): ErrorBody {
  if (error instanceof ServiceError)
    return { statusCode: error.statusCode, error: error.code, message: error.message };
  if (hasZodFastifySchemaValidationErrors(error)) {
    return { statusCode: 400, error: 'invalid', message: validationMessage(error) };
  }
  const statusCode = error.statusCode ?? 500;
  if (statusCode >= 400 && statusCode < 500) {
    return { statusCode, error: error.code ?? 'bad_request', message: error.message };
  }
  return { statusCode: 500, error: 'internal', message: 'Internal server error' };
}

export async function buildApp(appDeps: AppDeps) {
  // This app's metrics registry, and the passes service's signing and bundle cache observers feeding it.
  const deps = withOps(appDeps);
  const limits = createRateLimits(deps.rateLimits ?? defaultRateLimits, deps.clock);
  const wallet = {
    knownPasses: createKnownPasses(deps.database.passChanges),
    bundleCache: deps.bundleCache ?? createBundleCache(),
  };
  const accessLog = createAccessLog(deps.log);
  const app = Fastify({
    loggerInstance: deps.log,
    // One access line per request instead of Fastify's two (src/ops/request-log.ts).
    logController: new RequestLog(accessLog),
    // Identifiers may be up to 256 characters each; the default 100-character limit on params is too short.
    routerOptions: { maxParamLength: 1024 },
    bodyLimit: 64 * 1024,
    trustProxy: deps.trustProxy ?? false,
    // x-request-id when the client sent a sane one, else a UUID (src/ops/request-id.ts); echoed by src/ops.
    requestIdHeader: false,
    genReqId: requestIdFor,
    // close() (SIGTERM): the listener stops accepting, idle keep-alive connections are closed, requests in
    // flight finish; a request that still arrives on an open connection is answered 503 without running its
    // handler. Not forceCloseConnections: true, which would cut requests in flight.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });
  // Node's server.close() closes the connections idle at that moment only: one serving a request keeps its
  // keep-alive after the answer, and close() would wait keepAliveTimeout (72 s), past any shutdown deadline.
  // So while closing, answers say `Connection: close`, and connections that went idle are closed as they appear.
  let idleReaper: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    idleReaper = setInterval(() => app.server.closeIdleConnections(), 50);
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (idleReaper) reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onClose', async () => clearInterval(idleReaper));
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(sensible);
  // Every body this API takes is JSON: anything else is 415, not a string handed to validation.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const body = errorBody(error);
    if (body.statusCode >= 500) request.log.error({ err: error }, 'request failed');
    return reply.code(body.statusCode).send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      statusCode: 404,
      error: 'not_found',
      message: `No route ${request.method} ${request.url.split('?')[0]}`,
    }),
  );

  const links = downloadLinks({
    publicUrl: deps.publicUrl,
    adminToken: deps.adminToken,
    ttlSeconds: deps.downloadLinkTtlSeconds,
  });
  // Before every route: these hooks and the OpenAPI collector only apply to routes registered after them.
  addSecurityHeaders(app);
  await registerRateLimits(app, limits);
  await registerDocs(app, { publicUrl: deps.publicUrl });
  await registerOps(app, deps);
  await app.register(walletRoutes({ ...deps, ...wallet }));
  await app.register(adminRoutes({ ...deps, links }));
  await app.register(downloadRoute({ ...deps, links }));
  return app;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
