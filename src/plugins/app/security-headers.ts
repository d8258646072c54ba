import fp from 'fastify-plugin';

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

export const securityHeadersPlugin = fp(
  async (app) => {
    // onSend runs for every answer, errors and 404s included. A callback hook, not an async one: no promise per
    // request.
    app.addHook('onSend', (request, reply, payload, done) => {
      reply.headers(securityHeaders);
      // The admin routes' own hook sets no-store once the token is checked; their error answers (401, 429) need it
      // too.
      if (request.routeOptions.url?.startsWith('/admin/') && !reply.hasHeader('cache-control')) {
        reply.header('cache-control', 'no-store');
      }
      done(null, payload);
    });
  },
  { name: 'security-headers', fastify: '5.x' },
);
