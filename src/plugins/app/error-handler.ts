import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { InvalidError, ServiceError, ServiceUnavailableError } from '../../errors.js';
import { securityHeaders } from './security-headers.js';

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
      const path = issue.instancePath.replace(/^\//, '').split('/').filter(Boolean);
      // zod names a refused record key with the key as the last step of the path and the key's own issues inside.
      const keyIssues = issue.keyword === 'invalid_key' ? messagesOf(issue.params.issues) : [];
      const key = keyIssues.length > 0 ? path.pop() : undefined;
      const message =
        key === undefined ? issue.message : `key ${JSON.stringify(key)} ${keyIssues.join(', ')}`;
      return `${[where, ...path].join('.')}: ${message}`;
    })
    .join('; ');
}

function messagesOf(issues: unknown): string[] {
  if (!Array.isArray(issues)) return [];
  return issues.flatMap((issue: { message?: unknown }) =>
    typeof issue.message === 'string' ? [issue.message] : [],
  );
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

/**
 * Fastify's frameworkErrors option: the errors its router raises before any route, hook or the error handler runs
 * (a path that is not percent-encoded UTF-8, a path segment over maxParamLength), answered as ErrorBodies too
 * instead of Fastify's own {error, code, message, statusCode}. The messages name the path without echoing it. No
 * hook runs for these answers, so the request id is echoed and the security headers are set here (their plugins do it
 * otherwise).
 */
export function frameworkErrors(options: { maxParamLength: number }) {
  const frameworkErrorBody = (error: FastifyError): ErrorBody => {
    if (error.code === 'FST_ERR_BAD_URL') {
      return errorBody(new InvalidError('path: not valid percent-encoding (each %XX must spell UTF-8 text)'));
    }
    if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
      // RFC 9110, 15.5.15: 414 URI Too Long, "the target URI is longer than the server is willing to interpret".
      const message = `path: a path segment is longer than ${options.maxParamLength} characters`;
      return { statusCode: 414, error: 'uri_too_long', message };
    }
    return errorBody(error);
  };
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const body = frameworkErrorBody(error);
    if (body.statusCode >= 500) request.log.error({ err: error }, 'request failed');
    return reply.code(body.statusCode).headers(securityHeaders).header('x-request-id', request.id).send(body);
  };
}

/**
 * Fastify's clientErrorHandler: what Node's HTTP parser refuses before there is a request (a client too slow with its
 * headers or body, header fields over the size limit, bytes that are not HTTP/1.1), answered as an ErrorBody too
 * instead of Fastify's own {error: "Request Timeout", …}, then the connection is closed as Node does.
 */
export function clientErrors(error: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset connection (or one already closed) has nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const body = clientErrorBody(error.code);
  if (socket.writable) {
    const json = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${body.statusCode} ${STATUS_CODES[body.statusCode]}\r\nConnection: close\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n` +
        `Content-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
    );
  }
  socket.destroy(error);
}

function clientErrorBody(code: string | undefined): ErrorBody {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    const message =
      'request: its headers or body did not arrive in time (HTTP_HEADERS_TIMEOUT_SECONDS, HTTP_REQUEST_TIMEOUT_SECONDS)';
    return { statusCode: 408, error: 'request_timeout', message };
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    return {
      statusCode: 431,
      error: 'header_fields_too_large',
      message: 'request: its header fields are too large',
    };
  }
  return { statusCode: 400, error: 'invalid', message: 'request: not a valid HTTP/1.1 request' };
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
