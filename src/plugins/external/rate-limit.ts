import rateLimit from '@fastify/rate-limit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { TooManyRequestsError } from '../../errors.js';
import { addressKey, limitedApi, walletRequestKey } from '../limit-keys.js';

export interface RequestLimitOptions {
  /** RATE_LIMIT_PER_MINUTE: requests a minute per client address, for each API. 0 turns that limit off. */
  perMinute: number;
  /** RATE_LIMIT_PER_DEVICE_PER_MINUTE: Wallet requests naming one device library identifier, per address. */
  perDevicePerMinute: number;
  /** RATE_LIMIT_PER_PASS_PER_MINUTE: Wallet downloads of one pass, per address. */
  perPassPerMinute: number;
}

const timeWindow = 60_000;
const seconds = (milliseconds: number) => Math.max(1, Math.ceil(milliseconds / 1000));

/**
 * The request limits (src/plugins/limit-keys.ts) through @fastify/rate-limit, counted on arrival, 429 before any work
 * past them, with x-ratelimit-* and Retry-After headers:
 *
 * - per API and client address (the plugin's own hook on every route): the ceiling of one address;
 * - on Apple's endpoints, also per device library identifier (register, unregister, list) or per pass (the latest
 *   pass) and address: one device or pass cannot use up the ceiling that a crowd behind the address shares.
 *
 * Counts are in memory, least recently seen forgotten first: forgetting a count only ever lets a request through.
 */
export const requestLimits = fp<RequestLimitOptions>(
  async (app, options) => {
    await app.register(rateLimit, {
      // Every route is limited unless it opts out on the route itself (`config: { rateLimit: false }`, the health
      // routes in src/routes/ops.ts); the docs are registered before this plugin, so never limited.
      global: options.perMinute > 0,
      max: options.perMinute,
      timeWindow,
      // Addresses remembered.
      cache: 10_000,
      keyGenerator: (request) =>
        `${limitedApi(request.routeOptions.url) ?? 'other'}:${addressKey(request.ip)}`,
      // Thrown to the app's error handler, which answers it in the JSON body of every error.
      errorResponseBuilder: (_request, context) =>
        new TooManyRequestsError(
          `Rate limit exceeded: at most ${context.max} requests a minute from one address; retry in ${seconds(context.ttl)} s`,
          seconds(context.ttl),
        ),
    });

    // @fastify/rate-limit runs one of its hooks per route (a request it has counted skips the others), so the
    // second count of Apple's endpoints is its documented manual limiter, after the address's ceiling.
    const walletLimit = (max: number, what: string) => {
      const check = app.createRateLimit({ max, timeWindow, keyGenerator: walletRequestKey });
      return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
        const limit = await check(request);
        if (limit.isAllowed || !limit.isExceeded) return;
        // The headers of the limit that refused, in place of the address's.
        reply.headers({
          'x-ratelimit-limit': limit.max,
          'x-ratelimit-remaining': 0,
          'x-ratelimit-reset': limit.ttlInSeconds,
          'retry-after': seconds(limit.ttl),
        });
        throw new TooManyRequestsError(
          `Rate limit exceeded: at most ${limit.max} requests a minute for one ${what} from one address; retry in ${seconds(limit.ttl)} s`,
          seconds(limit.ttl),
        );
      };
    };
    const perDevice = options.perDevicePerMinute > 0 && walletLimit(options.perDevicePerMinute, 'device');
    const perPass = options.perPassPerMinute > 0 && walletLimit(options.perPassPerMinute, 'pass');
    app.addHook('onRoute', (route) => {
      if (limitedApi(route.url) !== 'v1') return;
      const hook = route.url.includes(':deviceLibraryIdentifier')
        ? perDevice
        : route.url.includes(':serialNumber')
          ? perPass
          : false;
      if (!hook) return;
      route.onRequest = [...(route.onRequest === undefined ? [] : [route.onRequest].flat()), hook];
    });
  },
  { name: 'request-limits', fastify: '5.x' },
);
