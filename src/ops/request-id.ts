import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

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
