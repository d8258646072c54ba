import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import { TooManyRequestsError } from '../../errors.js';
import { addressKey, limitedApi } from '../limit-keys.js';

export interface RequestLimitOptions {
  /** RATE_LIMIT_PER_MINUTE: requests a minute per client address, for each API. 0 turns the limit off. */
  perMinute: number;
}

/**
 * The general request limit (src/plugins/limit-keys.ts) through @fastify/rate-limit: one budget per API and client
 * address, counted on arrival, 429 before any work past it, with x-ratelimit-* and Retry-After headers.
 */
export const requestLimits = fp<RequestLimitOptions>(
  async (app, { perMinute }) => {
    if (perMinute === 0) return;
    await app.register(rateLimit, {
      max: perMinute,
      timeWindow: 60_000,
      // Addresses remembered (least recently seen dropped first): an attacker would need that many anyway.
      cache: 10_000,
      // Every route is limited unless it opts out on the route itself (`config: { rateLimit: false }`, the health
      // routes in src/routes/ops.ts); the docs are registered before this plugin, so never limited.
      keyGenerator: (request) =>
        `${limitedApi(request.routeOptions.url) ?? 'other'}:${addressKey(request.ip)}`,
      // Thrown to the app's error handler, which answers it in the JSON body of every error.
      errorResponseBuilder: (_request, context) => {
        const seconds = Math.max(1, Math.ceil(context.ttl / 1000));
        return new TooManyRequestsError(
          `Rate limit exceeded: at most ${context.max} requests a minute from one address; retry in ${seconds} s`,
          seconds,
        );
      },
    });
  },
  { name: 'request-limits', fastify: '5.x' },
);
