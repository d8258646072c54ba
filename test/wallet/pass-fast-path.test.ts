/*
 * The fast path for pass downloads (src/wallet/pass-fast-path.ts). Two kinds of test:
 * - on its own, in front of a stand-in for Fastify that answers 599: which requests it answers (the plain success
 *   from memory) and which it hands on untouched (everything else);
 * - inside the real app: its answers are the same as the Fastify route's (app.inject() never reaches the fast path,
 *   a real HTTP request does).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { clientIpFor, createRateLimits } from '../../src/ops/rate-limits.js';
import { createAccessLog } from '../../src/ops/request-log.js';
import { createBundleCache } from '../../src/passes/bundle-cache.js';
import { createKnownPasses } from '../../src/wallet/known-passes.js';
import { createPassFastPath, type PassFastPath } from '../../src/wallet/pass-fast-path.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { type CreatedPass, createPass } from './pass-fixtures.js';

const log = pino({ level: 'silent' });
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

/** A fast path over the test database, in front of a stand-in for Fastify that answers 599 and counts. */
async function startFastPath(perMinute = 1000, appLog: Logger = log) {
  const knownPasses = createKnownPasses(server.database.passChanges);
  const bundleCache = createBundleCache();
  const limits = createRateLimits({ perMinute, authFailuresPerMinute: 3 }, systemClock);
  const metrics = createMetrics({ repositories: server.database.repositories, clock: systemClock, log });
  const fastPath: PassFastPath = createPassFastPath({
    knownPasses,
    bundleCache,
    limits,
    metrics,
    log: appLog,
    accessLog: createAccessLog(appLog),
    clientIp: clientIpFor(false),
  });
  const handedOn: IncomingMessage[] = [];
  const framework = (request: IncomingMessage, response: ServerResponse) => {
    handedOn.push(request);
    response.statusCode = 599;
    response.end('framework');
  };
  const http: Server = createServer((request, response) => fastPath.serve(request, response, framework));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    knownPasses,
    bundleCache,
    limits,
    metrics,
    fastPath,
    handedOn,
    /** What the Fastify route does on its first answer: remember the credentials and keep the bundle. */
    async warm(pass: CreatedPass) {
      const credentials = await knownPasses.find(pass, () =>
        server.database.repositories.passes.readCredentials(pass),
      );
      if (!credentials) throw new Error('no such pass');
      const bundle = await fetch(`${server.baseUrl}${pass.path}`, {
        headers: { authorization: `ApplePass ${pass.authenticationToken}` },
      });
      bundleCache.set(credentials.id, credentials.version, Buffer.from(await bundle.arrayBuffer()));
      return credentials;
    },
    get(path: string, headers: Record<string, string> = {}, method = 'GET') {
      return fetch(`${base}${path}`, { method, headers });
    },
    close: () => new Promise((resolve) => http.close(resolve)),
  };
}

const authorized = (pass: CreatedPass, extra: Record<string, string> = {}) => ({
  authorization: `ApplePass ${pass.authenticationToken}`,
  ...extra,
});

describe('the fast path on its own', () => {
  it('answers a remembered pass from memory: 200 with the bundle, 304 at or after Last-Modified', async () => {
    const fast = await startFastPath();
    const pass = await createPass(server);
    const credentials = await fast.warm(pass);

    const ok = await fast.get(pass.path, authorized(pass));
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer())).toEqual(
      fast.bundleCache.get(credentials.id, credentials.version),
    );
    expect(ok.headers.get('content-type')).toBe('application/vnd.apple.pkpass');
    expect(ok.headers.get('last-modified')).toBe(credentials.lastModifiedHttp);
    expect(ok.headers.get('cache-control')).toBe('no-cache');
    expect(ok.headers.get('x-content-type-options')).toBe('nosniff');
    expect(ok.headers.get('x-ratelimit-limit')).toBe('1000');
    expect(ok.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    const later = new Date(credentials.lastModified.getTime() + 5000).toUTCString();
    for (const since of [credentials.lastModifiedHttp, later]) {
      const notModified = await fast.get(pass.path, authorized(pass, { 'if-modified-since': since }));
      expect(notModified.status).toBe(304);
      expect(notModified.headers.get('last-modified')).toBe(credentials.lastModifiedHttp);
    }
    const earlier = new Date(credentials.lastModified.getTime() - 1000).toUTCString();
    expect((await fast.get(pass.path, authorized(pass, { 'if-modified-since': earlier }))).status).toBe(200);
    expect(fast.handedOn).toHaveLength(0);
    await fast.close();
  });

  it('hands on everything that is not the plain success, untouched', async () => {
    const fast = await startFastPath();
    const pass = await createPass(server);
    await fast.warm(pass);
    const unremembered = await createPass(server);
    const answers = [
      await fast.get(pass.path, { authorization: 'ApplePass wrong-token-wrong-token' }),
      await fast.get(pass.path),
      await fast.get(pass.path, authorized(pass), 'HEAD'),
      await fast.get(`${pass.path}?x=1`, authorized(pass)),
      await fast.get(
        pass.path.replace(pass.serialNumber, encodeURIComponent(`${pass.serialNumber}é`)),
        authorized(pass),
      ),
      await fast.get(unremembered.path, authorized(unremembered)),
      await fast.get(`/v1/passes/${pass.passTypeIdentifier}/${'x'.repeat(300)}`, authorized(pass)),
    ];
    expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 599));
    expect(fast.handedOn).toHaveLength(answers.length);
    await fast.close();
  });

  it('hands on a pass whose bundle for the current version is not in memory, and a version changed in SQL', async () => {
    const fast = await startFastPath();
    const pass = await createPass(server);
    // Remembered, but its bundle is not in this instance's memory: the route loads it.
    await fast.knownPasses.find(pass, () => server.database.repositories.passes.readCredentials(pass));
    expect((await fast.get(pass.path, authorized(pass))).status).toBe(599);

    const credentials = await fast.warm(pass);
    expect((await fast.get(pass.path, authorized(pass))).status).toBe(200);
    await fast.warm(pass);
    await server.database.prisma.$executeRawUnsafe(
      `UPDATE passes SET version = version + 1, last_modified = last_modified + interval '1 second'
       WHERE pass_type_identifier = $1 AND serial_number = $2`,
      pass.passTypeIdentifier,
      pass.serialNumber,
    );
    // The change is seen on the very next request (the feed's fence): not 304 at the old Last-Modified, and no
    // bundle of the old version.
    const after = await fast.get(
      pass.path,
      authorized(pass, { 'if-modified-since': credentials.lastModifiedHttp }),
    );
    expect(after.status).toBe(599);
    await fast.close();
  });

  it('counts each request once in the budget, also those it hands on, and hands on past the budget', async () => {
    const fast = await startFastPath(3);
    const pass = await createPass(server);
    await fast.warm(pass);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const answer = await fast.get(pass.path, authorized(pass));
      statuses.push(answer.status);
      if (i < 3) expect(answer.headers.get('x-ratelimit-remaining')).toBe(String(2 - i));
    }
    expect(statuses).toEqual([200, 200, 200, 599]);
    // The request handed on was counted: the framework's hook reads that count instead of counting again.
    const handedOn = fast.handedOn[0];
    if (!handedOn) throw new Error('nothing handed on');
    const first = fast.limits.countRequest(handedOn, 'v1', '127.0.0.1');
    expect(first.exceeded).toBe(true);
    expect(fast.limits.countRequest(handedOn, 'v1', '127.0.0.1')).toBe(first);
    await fast.close();
  });

  it('hands on while the address is blocked for failed authentications, and after close()', async () => {
    const fast = await startFastPath();
    const pass = await createPass(server);
    await fast.warm(pass);
    for (let i = 0; i < 3; i++) fast.limits.failures.record('127.0.0.1');
    expect((await fast.get(pass.path, authorized(pass))).status).toBe(599);

    const other = await startFastPath();
    await other.warm(pass);
    expect((await other.get(pass.path, authorized(pass))).status).toBe(200);
    other.fastPath.close();
    expect((await other.get(pass.path, authorized(pass))).status).toBe(599);
    await fast.close();
    await other.close();
  });

  it('records the request metrics of what it answers', async () => {
    const fast = await startFastPath();
    const pass = await createPass(server);
    await fast.warm(pass);
    await fast.get(pass.path, authorized(pass));
    const text = await fast.metrics.registry.metrics();
    expect(text).toContain(
      'passkit_http_requests_total{route="/v1/passes/:passTypeIdentifier/:serialNumber",method="GET",status_code="200"} 1',
    );
    await fast.close();
  });
});

describe('request logs of the fast path', () => {
  it('writes the access line the routes write, with the request id and no secrets', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const appLog = createLogger({
      level: 'info',
      destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    const fast = await startFastPath(1000, appLog);
    const pass = await createPass(server);
    await fast.warm(pass);
    const answer = await fast.get(pass.path, authorized(pass, { 'x-request-id': 'fast-1' }));
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-request-id')).toBe('fast-1');
    const mine = lines.filter((line) => line.reqId === 'fast-1');
    expect(mine.map((line) => line.msg)).toEqual(['request completed']);
    expect(mine[0]?.req).toEqual({ id: 'fast-1', method: 'GET', url: pass.path, remoteAddress: '127.0.0.1' });
    expect(mine[0]?.res).toEqual({ statusCode: 200 });
    expect(mine[0]?.responseTime).toEqual(expect.any(Number));
    expect(JSON.stringify(lines)).not.toContain(pass.authenticationToken);
    await fast.close();
  });
});

describe('TRUST_PROXY for requests answered without Fastify', () => {
  it('takes the furthest trusted X-Forwarded-For hop, as Fastify does, and the peer when off', () => {
    const request = (forwardedFor: string) =>
      ({
        socket: { remoteAddress: '127.0.0.1' },
        headers: { 'x-forwarded-for': forwardedFor },
      }) as unknown as IncomingMessage;
    expect(clientIpFor(false)(request('203.0.113.7'))).toBe('127.0.0.1');
    expect(clientIpFor(['127.0.0.1'])(request('203.0.113.7'))).toBe('203.0.113.7');
    expect(clientIpFor(['127.0.0.1'])(request('203.0.113.7, 198.51.100.1'))).toBe('198.51.100.1');
    expect(clientIpFor(true)(request('203.0.113.7, 198.51.100.1'))).toBe('203.0.113.7');
    expect(clientIpFor(['10.0.0.0/8'])(request('203.0.113.7'))).toBe('127.0.0.1');
  });
});

describe('inside the app', () => {
  /** Headers that differ between any two answers, whoever makes them. */
  const perAnswer = new Set([
    'date',
    'x-request-id',
    'x-ratelimit-remaining',
    'x-ratelimit-reset',
    'connection',
    'keep-alive',
  ]);
  const comparable = (headers: Iterable<[string, string]>) =>
    Object.fromEntries(
      [...headers].filter(([name]) => !perAnswer.has(name)).sort(([a], [b]) => a.localeCompare(b)),
    );

  it('answers exactly as the Fastify route does, 200 and 304', async () => {
    const pass = await createPass(server);
    const headers = authorized(pass);
    // The first download goes to Fastify (nothing remembered yet); the next ones are the fast path's.
    await (await fetch(`${server.baseUrl}${pass.path}`, { headers })).arrayBuffer();
    const viaHttp = await fetch(`${server.baseUrl}${pass.path}`, { headers });
    const viaFastify = await server.app.inject({ url: pass.path, headers });
    expect(viaHttp.status).toBe(viaFastify.statusCode);
    expect(Buffer.from(await viaHttp.arrayBuffer())).toEqual(viaFastify.rawPayload);
    expect(comparable(viaHttp.headers)).toEqual(
      comparable(Object.entries(viaFastify.headers).map(([k, v]) => [k, String(v)])),
    );

    const since = { ...headers, 'if-modified-since': viaHttp.headers.get('last-modified') ?? '' };
    const notModified = await fetch(`${server.baseUrl}${pass.path}`, { headers: since });
    const notModifiedViaFastify = await server.app.inject({ url: pass.path, headers: since });
    expect(notModified.status).toBe(304);
    expect(notModifiedViaFastify.statusCode).toBe(304);
    expect(comparable(notModified.headers)).toEqual(
      comparable(Object.entries(notModifiedViaFastify.headers).map(([k, v]) => [k, String(v)])),
    );
  });
});
