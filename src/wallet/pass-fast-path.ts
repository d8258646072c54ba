/*
 * Wallet's most frequent request, `GET /v1/passes/{passTypeIdentifier}/{serialNumber}` after a push, answered
 * without the framework when the answer is the plain success: a remembered pass, the right token, and a 304 or the
 * bundle of the current version in memory. It costs a fraction of Fastify's request lifecycle, which is most of the
 * work of answering from memory.
 *
 * Everything else (no or a wrong token, an unknown or unremembered pass, a bundle to load, a limit reached, HEAD,
 * encoded or odd URLs, shutting down) is handed to Fastify untouched, and the route in routes.ts answers it, with
 * the same rules: so every error, and every decision about credentials and limits that is not a plain yes, is made in
 * one place. What the fast path does answer carries what Fastify's hooks would have added: the request id, the
 * security headers, the rate-limit headers, the request metrics and the access log line (request-log.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../logger.js';
import type { Metrics } from '../ops/metrics.js';
import { type Budget, clientAddress, limitedApi, type RateLimits } from '../ops/rate-limits.js';
import { requestIdFor } from '../ops/request-id.js';
import type { AccessLog } from '../ops/request-log.js';
import { securityHeaders } from '../ops/security-headers.js';
import type { BundleCache } from '../passes/bundle-cache.js';
import { applePassToken, tokenMatches } from './authentication.js';
import type { KnownPasses, PassCredentials } from './known-passes.js';
import { latestPassRoute, notModifiedSince, passCacheControl, pkpassContentType } from './latest-pass.js';

export interface PassFastPathDeps {
  knownPasses: Pick<KnownPasses, 'remembered'>;
  bundleCache: Pick<BundleCache, 'get'>;
  limits: RateLimits;
  metrics: Pick<Metrics, 'observeRequest'>;
  /** The bundle cache metric, as getSignedBundle reports a hit (src/ops/ops.ts). */
  observeBundleCache?: (result: 'hit') => void;
  /** For its own failures. */
  log: Logger;
  accessLog: AccessLog;
  /** The client's address as Fastify's request.ip gives it (TRUST_PROXY applied). */
  clientIp(request: IncomingMessage): string;
}

interface Answer {
  status: 200 | 304;
  lastModified: string;
  bundle?: Buffer;
}

export type RequestListener = (request: IncomingMessage, response: ServerResponse) => void;

export interface PassFastPath {
  /** Answers the request, or hands it to `framework` (Fastify's handler) untouched. */
  serve(request: IncomingMessage, response: ServerResponse, framework: RequestListener): void;
  /** From now on, everything goes to the framework (it answers 503 and Connection: close while closing). */
  close(): void;
}

// Only plain segments: anything percent-encoded, or a query, is Fastify's to decode and route. The identifiers need no
// checking here: only a pass the route has looked up, after validating its parameters, is remembered.
const passPath = /^\/v1\/passes\/([^/?%#]+)\/([^/?%#]+)$/;

const securityHead = Object.entries(securityHeaders).flat();

// The general budget the route's requests count in, as rate-limits.ts gives it to the route.
const passApi = limitedApi(latestPassRoute) ?? '';

export function createPassFastPath(deps: PassFastPathDeps): PassFastPath {
  const { knownPasses, bundleCache, limits, metrics, log, accessLog } = deps;
  let closed = false;

  /** What to answer from the remembered credentials, or undefined for Fastify to answer. */
  function answer(
    request: IncomingMessage,
    credentials: PassCredentials | undefined,
    token: string,
    address: string,
  ): Answer | undefined {
    if (!tokenMatches(token, credentials)) return undefined;
    // A burst of failures from this address may have blocked it meanwhile (rate-limits.ts replaces such answers).
    if (limits.failures.blockedForMs(address) > 0) return undefined;
    const lastModified = credentials.lastModifiedHttp;
    if (notModifiedSince(credentials, request.headers['if-modified-since']))
      return { status: 304, lastModified };
    const bundle = bundleCache.get(credentials.id, credentials.version);
    if (!bundle) return undefined;
    deps.observeBundleCache?.('hit');
    return { status: 200, lastModified, bundle };
  }

  /** Writes the answer with the headers Fastify's hooks would have added, then its metrics and log lines. */
  function send(
    request: IncomingMessage,
    response: ServerResponse,
    answered: Answer,
    { budget, ip, start }: { budget: Budget | undefined; ip: string; start: number },
  ): void {
    const id = requestIdFor(request);
    const { status, lastModified, bundle } = answered;
    // A flat list, not an object built with spreads: this runs for every download.
    const head = [
      'x-request-id',
      id,
      'cache-control',
      passCacheControl,
      'last-modified',
      lastModified,
      ...securityHead,
    ];
    if (budget) for (const [name, value] of Object.entries(budget.headers)) head.push(name, value);
    if (bundle) head.push('content-type', pkpassContentType, 'content-length', String(bundle.length));
    response.writeHead(status, head);
    response.end(bundle);
    const milliseconds = performance.now() - start;
    metrics.observeRequest(latestPassRoute, 'GET', status, milliseconds / 1000);
    accessLog.completed({
      reqId: id,
      req: { id, method: request.method, url: request.url, ip },
      res: { statusCode: status },
      responseTime: milliseconds,
    });
  }

  /** Starts answering the request; false when it is not one for the fast path. */
  function started(request: IncomingMessage, response: ServerResponse, framework: RequestListener): boolean {
    const start = performance.now();
    const match = request.method === 'GET' && !closed ? passPath.exec(request.url ?? '') : null;
    const token = match ? applePassToken(request.headers.authorization) : undefined;
    if (!match || !token) return false;
    const ip = deps.clientIp(request);
    const address = clientAddress(ip);
    // Counted here, once, in the route's budget: Fastify's hook reads this count if the request goes on.
    const budget = limits.settings.perMinute > 0 ? limits.countRequest(request, passApi, address) : undefined;
    if (budget?.exceeded || limits.failures.blockedForMs(address) > 0) return false;

    const key = { passTypeIdentifier: match[1] ?? '', serialNumber: match[2] ?? '' };
    knownPasses
      .remembered(key)
      .then(
        (credentials) => answer(request, credentials, token, address),
        (error: unknown) => {
          log.error({ err: error }, 'pass fast path failed; the request goes to the framework');
          return undefined;
        },
      )
      .then((answered) => {
        if (answered) send(request, response, answered, { budget, ip, start });
        else framework(request, response);
      })
      .catch((error: unknown) => {
        log.error({ err: error }, 'pass fast path failed while answering');
        response.destroy();
      });
    return true;
  }

  return {
    serve(request, response, framework) {
      if (!started(request, response, framework)) framework(request, response);
    },
    close() {
      closed = true;
    },
  };
}
