import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { defaultRateLimits, loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { FailedAuthentications } from '../../src/plugins/app/failed-auth.js';
import { addressKey } from '../../src/plugins/limit-keys.js';
import { adminToken, startTestServer, type TestServer } from '../support/server.js';

/* Real, low limits: each test starts its own server (the counters live in the app). */

/** A clock the test moves forward, so that a failure window can pass without waiting a minute. */
function movableClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    advance: (ms) => {
      offset += ms;
    },
  };
}

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function createPass(test: TestServer, serialNumber: string) {
  const created = await test.admin('POST', '/admin/passes', { template: 'loyalty', serialNumber });
  expect(created.status).toBe(201);
  const stored = await test.database.prisma.pass.findFirstOrThrow({ where: { serialNumber } });
  return {
    path: `/v1/passes/${String(created.body.passTypeIdentifier)}/${serialNumber}`,
    token: stored.authenticationToken,
  };
}

async function get(test: TestServer, path: string, headers: Record<string, string> = {}) {
  return fetch(`${test.baseUrl}${path}`, { headers });
}

async function expectTooMany(response: Response, message: RegExp) {
  expect(response.status).toBe(429);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
  const body = (await response.json()) as Record<string, unknown>;
  expect(body).toEqual({
    statusCode: 429,
    error: 'too_many_requests',
    message: expect.stringMatching(message),
  });
}

describe('general rate limit per client address', () => {
  it('answers 429 with Retry-After past the limit, per API, and leaves health alone', async () => {
    server = await startTestServer({ rateLimits: { perMinute: 5, authFailuresPerMinute: 100 } });
    const log = () =>
      fetch(`${server?.baseUrl}/v1/log`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"logs":[]}',
      });
    for (let i = 0; i < 5; i++) {
      const response = await log();
      expect(response.status).toBe(200);
      expect(response.headers.get('x-ratelimit-limit')).toBe('5');
    }
    await expectTooMany(await log(), /Rate limit exceeded/);
    // The admin API has its own budget, and health checks none.
    expect((await server.admin('GET', '/admin/templates')).status).toBe(200);
    for (let i = 0; i < 10; i++) expect((await get(server, '/healthz')).status).toBe(200);
  });
});

describe('failed authentication', () => {
  it('blocks every authenticated route of an address that guesses pass tokens, until the window passes', async () => {
    const clock = movableClock();
    server = await startTestServer({ clock, rateLimits: { perMinute: 1000, authFailuresPerMinute: 3 } });
    const pass = await createPass(server, 'guessed-1');
    const wrong = { authorization: 'ApplePass wrong-token-wrong-token' };
    const right = { authorization: `ApplePass ${pass.token}` };

    expect((await get(server, pass.path, right)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await get(server, pass.path, wrong)).status).toBe(401);
    await expectTooMany(await get(server, pass.path, wrong), /failed authentications/);
    // The right token does not help now, nor the admin token: the address is blocked, not the token.
    await expectTooMany(await get(server, pass.path, right), /failed authentications/);
    await expectTooMany(
      await get(server, '/admin/templates', { authorization: `Bearer ${adminToken}` }),
      /failed authentications/,
    );
    const retryAfter = Number((await get(server, pass.path, right)).headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(50);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // Routes without credentials stay open (Wallet's list of updatable passes, health).
    expect((await get(server, '/v1/devices/d1/registrations/pass.x')).status).toBe(204);

    clock.advance(61_000);
    expect((await get(server, pass.path, right)).status).toBe(200);
  });

  it('blocks an address that guesses the admin token', async () => {
    server = await startTestServer({ rateLimits: { perMinute: 1000, authFailuresPerMinute: 3 } });
    const wrong = { authorization: 'Bearer not-the-admin-token-0000' };
    for (let i = 0; i < 3; i++) expect((await get(server, '/admin/passes', wrong)).status).toBe(401);
    await expectTooMany(await get(server, '/admin/passes', wrong), /failed authentications/);
    expect((await server.admin('GET', '/admin/templates')).status).toBe(429);
  });

  it('gives a parallel burst no more answers than the threshold', async () => {
    server = await startTestServer({ rateLimits: { perMinute: 1000, authFailuresPerMinute: 3 } });
    const pass = await createPass(server, 'burst-1');
    const { app } = server;
    // inject() starts all of them in the same tick: every check on arrival runs before the first lookup ends.
    const statuses = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        app
          .inject({
            url: pass.path,
            headers: {
              // The right token is among the guesses: once the threshold is reached it must not be confirmed either.
              authorization: i === 20 ? `ApplePass ${pass.token}` : `ApplePass wrong-${i}-wrong-wrong-wrong`,
            },
          })
          .then((response) => response.statusCode),
      ),
    );
    expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(3);
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(26);
  });
});

describe('TRUST_PROXY', () => {
  const wrong = { authorization: 'Bearer not-the-admin-token-0000' };
  const right = { authorization: `Bearer ${adminToken}` };

  it('counts per X-Forwarded-For address when the proxy is trusted, and logs that address', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({
      level: 'info',
      destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    server = await startTestServer({
      log,
      trustProxy: ['127.0.0.1'],
      rateLimits: { perMinute: 1000, authFailuresPerMinute: 2 },
    });
    const attacker = { 'x-forwarded-for': '203.0.113.7' };
    const neighbour = { 'x-forwarded-for': '203.0.113.8' };
    for (let i = 0; i < 2; i++) await get(server, '/admin/passes', { ...wrong, ...attacker });
    expect((await get(server, '/admin/passes', { ...right, ...attacker })).status).toBe(429);
    expect((await get(server, '/admin/passes', { ...right, ...neighbour })).status).toBe(200);

    const completed = lines.filter((line) => line.msg === 'request completed');
    const addresses = completed.map((line) => (line.req as { remoteAddress?: string }).remoteAddress);
    expect(addresses).toContain('203.0.113.7');
    expect(addresses).toContain('203.0.113.8');
  });

  it('ignores X-Forwarded-For when off (the default): a client cannot pick its address', async () => {
    server = await startTestServer({ rateLimits: { perMinute: 1000, authFailuresPerMinute: 2 } });
    for (let i = 0; i < 2; i++) {
      await get(server, '/admin/passes', { ...wrong, 'x-forwarded-for': `198.51.100.${i}` });
    }
    const fresh = await get(server, '/admin/passes', { ...right, 'x-forwarded-for': '198.51.100.99' });
    expect(fresh.status).toBe(429);
  });

  it('is read from the environment: true, false, or the proxies’ addresses', () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,loopback, ::1' }).trustProxy).toEqual([
      '10.0.0.0/8',
      '127.0.0.1',
      'loopback',
      '::1',
    ]);
    // Fastify ignores a hop count, so it is refused rather than silently doing nothing.
    expect(() => loadConfig({ TRUST_PROXY: '2' })).toThrow(/TRUST_PROXY/);
    expect(() => loadConfig({ TRUST_PROXY: '10.0.0.0/33' })).toThrow(/TRUST_PROXY/);
    expect(() => loadConfig({ TRUST_PROXY: 'proxy.example.com' })).toThrow(/TRUST_PROXY/);
  });
});

describe('configuration', () => {
  it('defaults to a generous general limit and a strict failure limit', () => {
    expect(loadConfig({}).rateLimits).toEqual(defaultRateLimits);
    expect(defaultRateLimits).toEqual({ perMinute: 1000, authFailuresPerMinute: 10 });
    expect(loadConfig({ RATE_LIMIT_PER_MINUTE: '0', AUTH_FAILURES_PER_MINUTE: '5' }).rateLimits).toEqual({
      perMinute: 0,
      authFailuresPerMinute: 5,
    });
    expect(() => loadConfig({ AUTH_FAILURES_PER_MINUTE: '0' })).toThrow(/AUTH_FAILURES_PER_MINUTE/);
  });
});

describe('FailedAuthentications', () => {
  it('keeps a bounded number of addresses, dropping the oldest', () => {
    let now = 0;
    const failures = new FailedAuthentications(1, 60_000, () => now, 2);
    failures.record('a');
    failures.record('b');
    failures.record('c');
    expect(failures.blockedForMs('a')).toBe(0);
    expect(failures.blockedForMs('b')).toBe(60_000);
    expect(failures.blockedForMs('c')).toBe(60_000);
    now = 60_000;
    expect(failures.blockedForMs('c')).toBe(0);
  });
});

describe('addressKey', () => {
  it('counts IPv4 as it is (also mapped into IPv6) and IPv6 by its /64, however it is written', () => {
    expect(addressKey('203.0.113.7')).toBe('203.0.113.7');
    expect(addressKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0DB8:0001:0002::9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1::2:3:4:5')).toBe('2001:db8:1:0::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
  });
});

describe('headers on every answer', () => {
  let shared: TestServer;
  beforeAll(async () => {
    shared = await startTestServer();
  });
  afterAll(async () => {
    await shared?.close();
  });

  it('nosniff and no-referrer everywhere, no x-powered-by, no-store on admin, 413 in JSON', async () => {
    const answers = [
      await get(shared, '/healthz'),
      await get(shared, '/admin/templates', { authorization: `Bearer ${adminToken}` }),
      await get(shared, '/admin/templates'),
      await get(shared, '/nowhere'),
      await fetch(`${shared.baseUrl}/v1/log`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ logs: ['x'.repeat(300 * 1024)] }),
      }),
    ];
    for (const answer of answers) {
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
      expect(answer.headers.get('referrer-policy')).toBe('no-referrer');
      expect(answer.headers.get('x-powered-by')).toBeNull();
    }
    expect(answers[1]?.headers.get('cache-control')).toBe('no-store');
    expect(answers[2]?.headers.get('cache-control')).toBe('no-store');
    const tooLarge = answers[4];
    expect(tooLarge?.status).toBe(413);
    expect(tooLarge?.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await tooLarge?.json()).toMatchObject({ statusCode: 413 });
  });
});
