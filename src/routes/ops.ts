import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../ops/metrics.js';
import type { Readiness } from '../ops/readiness.js';
import { errorResponses, opsDoc } from './route-docs.js';

export interface OpsRoutesOptions {
  readiness: Readiness;
  metrics: Pick<Metrics, 'scrape' | 'contentType'>;
  /** False when METRICS_PORT serves /metrics on a port of its own: then the main port does not. */
  metricsOnMainPort: boolean;
}

// A load balancer probing health, or Prometheus scraping, must never be refused by the request limit.
const unlimited = { rateLimit: false } as const;

const liveness = z.object({ status: z.literal('ok') }).meta({ description: 'The process answers' });
const ready = z
  .object({ status: z.literal('ready') })
  .meta({ description: 'Every part this instance needs works' });
const unavailable = z
  .object({
    status: z.literal('unavailable'),
    failing: z
      .array(z.string())
      .meta({ description: 'The parts that fail: database, migrations, signingIdentity, pushWorker' }),
  })
  .meta({ description: 'A part this instance needs fails (or the server is shutting down)' });

/*
 * Liveness (the process answers), readiness (every part this instance needs works) and the Prometheus metrics.
 * Load balancers probe health every few seconds, so these request lines are logged at warn level and above only.
 */
export const opsRoutes: FastifyPluginAsync<OpsRoutesOptions> = async (fastify, options) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get(
    '/healthz',
    {
      config: unlimited,
      logLevel: 'warn',
      schema: {
        ...opsDoc('getHealth', 'Liveness: the process answers'),
        response: { 200: liveness, ...errorResponses(503) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/readyz',
    {
      config: unlimited,
      logLevel: 'warn',
      schema: {
        ...opsDoc('getReadiness', 'Readiness: 503 while a part it needs fails'),
        response: { 200: ready, 503: unavailable },
      },
    },
    async (_request, reply) => {
      const { ready, failing } = await options.readiness.check();
      if (ready) return reply.code(200).send({ status: 'ready' });
      return reply.code(503).send({ status: 'unavailable', failing });
    },
  );
  if (options.metricsOnMainPort) {
    const { metrics } = options;
    app.get(
      '/metrics',
      {
        config: unlimited,
        logLevel: 'warn',
        schema: {
          ...opsDoc('getMetrics', 'Prometheus metrics'),
          response: {
            200: {
              description: 'The metrics in the Prometheus text exposition format',
              // A string sent as is (not serialized as JSON): described by content type.
              content: { 'text/plain': { schema: z.string() } },
            },
            ...errorResponses(503),
          },
        },
      },
      async (_request, reply) => reply.type(metrics.contentType).send(await metrics.scrape()),
    );
  }
};
