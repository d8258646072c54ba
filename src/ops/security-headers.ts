import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, RawServerDefault } from 'fastify';
import type { Logger } from '../logger.js';

/*
 * The headers that matter for a JSON and .pkpass API (no HTML of ours except the /docs page): browsers must not
 * guess a content type (a JSON error echoing input must never run as script), and links in our answers (download
 * URLs carry a signature) must not leak through a Referer. Fastify sends no x-powered-by, so there is none to
 * remove. Cache-Control is per route: no-store on the admin API, no-cache on passes.
 */
export const securityHeaders = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

export function addSecurityHeaders(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
): void {
  // onSend runs for every answer, errors and 404s included; the root hook applies to every route. A callback hook,
  // not an async one: no promise per request.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.headers(securityHeaders);
    // The admin routes' own hook sets no-store once the token is checked; their error answers (401, 429) need it too.
    if (request.routeOptions.url?.startsWith('/admin/') && !reply.hasHeader('cache-control')) {
      reply.header('cache-control', 'no-store');
    }
    done(null, payload);
  });
}
