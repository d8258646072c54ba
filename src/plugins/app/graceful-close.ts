import fp from 'fastify-plugin';

/*
 * Node's server.close() closes the connections idle at that moment only: one serving a request keeps its keep-alive
 * after the answer, and close() would wait keepAliveTimeout, past any shutdown deadline. So while closing, answers
 * say `Connection: close`, and connections that went idle are closed as they appear. With Fastify's
 * forceCloseConnections: 'idle' and return503OnClosing (app.ts), requests in flight finish and a request that still
 * arrives on an open connection is answered 503.
 */
export const gracefulClosePlugin = fp(
  async (app) => {
    let idleReaper: NodeJS.Timeout | undefined;
    app.addHook('preClose', async () => {
      idleReaper = setInterval(() => app.server.closeIdleConnections(), 50);
    });
    app.addHook('onSend', (_request, reply, payload, done) => {
      if (idleReaper) reply.header('connection', 'close');
      done(null, payload);
    });
    app.addHook('onClose', async () => clearInterval(idleReaper));
  },
  { name: 'graceful-close', fastify: '5.x' },
);
