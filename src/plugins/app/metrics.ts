import fp from 'fastify-plugin';
import { type Metrics, unmatchedRoute } from '../../ops/metrics.js';

export interface MetricsPluginOptions {
  metrics: Pick<Metrics, 'observeRequest'>;
}

/** The request metrics of every answer, by route pattern (never the URL), method and status code. */
export const metricsPlugin = fp<MetricsPluginOptions>(
  async (app, { metrics }) => {
    // A callback hook, not an async one: no promise per request.
    app.addHook('onResponse', (request, reply, done) => {
      metrics.observeRequest(
        request.routeOptions.url ?? unmatchedRoute,
        request.method,
        reply.statusCode,
        reply.elapsedTime / 1000,
      );
      done();
    });
  },
  { name: 'metrics', fastify: '5.x' },
);
