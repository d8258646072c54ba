import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../ops/metrics.js';
import type { Readiness } from '../ops/readiness.js';
import { opsDoc } from './route-docs.js';

export interface OpsRoutesOptions {
  readiness: Readiness;
  metrics: Pick<Metrics, 'scrape' | 'contentType'>;
  /** False when METRICS_PORT serves /metrics on a port of its own: then the main port does not. */
  metricsOnMainPort: boolean;
}

// A load balancer probing health, or Prometheus scraping, must never be refused by the request limit.
const unlimited = { rateLimit: false } as const;

/*
 * Liveness (the process answers), readiness (every part this instance needs works) and the Prometheus metrics.
 * Load balancers probe health every few seconds, so these request lines are logged at warn level and above only.
 */
export const opsRoutes: FastifyPluginAsync<OpsRoutesOptions> = async (app, options) => {
  app.get(
    '/healthz',
    { config: unlimited, logLevel: 'warn', schema: opsDoc('Liveness: the process answers') },
    async () => ({
      status: 'ok',
    }),
  );
  app.get(
    '/readyz',
    { config: unlimited, logLevel: 'warn', schema: opsDoc('Readiness: 503 while a part it needs fails') },
    async (_request, reply) => {
      const { ready, failing } = await options.readiness.check();
      if (ready) return { status: 'ready' };
      return reply.code(503).send({ status: 'unavailable', failing });
    },
  );
  if (options.metricsOnMainPort) {
    const { metrics } = options;
    app.get(
      '/metrics',
      { config: unlimited, logLevel: 'warn', schema: opsDoc('Prometheus metrics') },
      async (_request, reply) => reply.type(metrics.contentType).send(await metrics.scrape()),
    );
  }
};
