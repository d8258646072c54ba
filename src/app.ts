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
import { ServiceError } from './errors.js';
import type { Logger } from './logger.js';
import { healthRoutes } from './ops/health.js';
import type { PassesDeps } from './passes/passes.js';
import { walletRoutes } from './wallet/routes.js';

export interface AppDeps extends PassesDeps {
  log: Logger;
  adminToken: string;
  publicUrl: string;
  downloadLinkTtlSeconds: number;
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

export async function buildApp(deps: AppDeps) {
  const app = Fastify({
    loggerInstance: deps.log,
    // Identifiers may be up to 256 characters each; the default 100-character limit on params is too short.
    routerOptions: { maxParamLength: 1024 },
    bodyLimit: 64 * 1024,
    requestIdHeader: 'x-request-id',
  });
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
  await app.register(healthRoutes(deps));
  await app.register(walletRoutes(deps));
  await app.register(adminRoutes({ ...deps, links }));
  await app.register(downloadRoute({ ...deps, links }));
  return app;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
