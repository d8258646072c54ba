import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import fp from 'fastify-plugin';

/*
 * A client's (or proxy's) x-request-id is kept only when it is short and plain: it is written into every log line
 * of the request and echoed in a header, so anything else (log injection, megabyte headers) gets a fresh UUID.
 */
const saneRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/** Fastify's genReqId: the sane x-request-id the client sent, else a new UUID. */
export function requestIdFor(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && saneRequestId.test(given) ? given : randomUUID();
}

/** Echoes the request's id, so a client or proxy can quote it in a report (it is in every log line of the request). */
export const requestIdPlugin = fp(
  async (app) => {
    // A callback hook, not an async one: no promise per request.
    app.addHook('onRequest', (request, reply, done) => {
      reply.header('x-request-id', request.id);
      done();
    });
  },
  { name: 'request-id', fastify: '5.x' },
);
