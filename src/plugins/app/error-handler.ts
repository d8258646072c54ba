import type { FastifyError } from 'fastify';
import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { ServiceError, ServiceUnavailableError } from '../../errors.js';

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

/** The error handler and the not-found handler of the whole app: every error answer is an ErrorBody. */
export const errorHandlerPlugin = fp(
  async (app) => {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const body = errorBody(error);
      // RFC 9110 §10.2.3: a 503 says with Retry-After when the client may send the request again.
      if (error instanceof ServiceUnavailableError) {
        reply.header('retry-after', String(error.retryAfterSeconds));
        request.log.warn({ err: error }, 'request not taken in time');
      } else if (body.statusCode >= 500) request.log.error({ err: error }, 'request failed');
      return reply.code(body.statusCode).send(body);
    });
    app.setNotFoundHandler((request, reply) =>
      reply.code(404).send({
        statusCode: 404,
        error: 'not_found',
        message: `No route ${request.method} ${request.url.split('?')[0]}`,
      } satisfies ErrorBody),
    );
  },
  { name: 'error-handler', fastify: '5.x' },
);
