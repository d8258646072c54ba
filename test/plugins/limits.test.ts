import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { defaultRateLimits, loadConfig } from '../../src/config.js';
import { FailedAuthentications } from '../../src/plugins/app/failed-auth.js';
import { addressKey } from '../../src/plugins/limit-keys.js';
import { capturingLogger } from '../support/log-lines.js';
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
    server = await startTestServer({ rateLimits: { perMinute: 5 } });
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

describe('Wallet request limits per device and per pass', () => {
  it('refuses one device or one pass past its budget, and serves the others behind the same address', async () => {
    server = await startTestServer({ rateLimits: { perDevicePerMinute: 3, perPassPerMinute: 3 } });
    const passA = await createPass(server, 'budget-a');
    const passB = await createPass(server, 'budget-b');
    const passType = passA.path.split('/')[3];
    const list = (device: string) =>
      get(server as TestServer, `/v1/devices/${device}/registrations/${passType}`);
    for (let i = 0; i < 3; i++) expect((await list('device-1')).status).toBe(204);
    const refused = await list('device-1');
    await expectTooMany(refused, /for one device from one address/);
    expect(refused.headers.get('x-ratelimit-limit')).toBe('3');
    expect((await list('device-2')).status).toBe(204);

    const fetchPass = (pass: { path: string; token: string }) =>
      get(server as TestServer, pass.path, { authorization: `ApplePass ${pass.token}` });
    for (let i = 0; i < 3; i++) expect((await fetchPass(passA)).status).toBe(200);
    await expectTooMany(await fetchPass(passA), /for one pass from one address/);
    expect((await fetchPass(passB)).status).toBe(200);
  });
});

describe('failed authentication', () => {
  it('counts per address and pass: guessing pass A slows only guesses at A, not pass B nor the admin', async () => {
    const clock = movableClock();
    // The production defaults (10 failures a minute), as in the reproduction.
    server = await startTestServer({ clock, rateLimits: defaultRateLimits });
    const passA = await createPass(server, 'guessed-a');
    const passB = await createPass(server, 'neighbour-b');
    const wrong = { authorization: 'ApplePass wrong-token-wrong-token-wrong-tok' };

    const guesses: number[] = [];
    for (let i = 0; i < 40; i++) guesses.push((await get(server, passA.path, wrong)).status);
    expect(guesses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(guesses.slice(10)).toEqual(Array(30).fill(429));
    await expectTooMany(await get(server, passA.path, wrong), /failed authentications/);
    // The same pass from the same address is refused whatever the token: a 200 would confirm a guess.
    await expectTooMany(
      await get(server, passA.path, { authorization: `ApplePass ${passA.token}` }),
      /failed authentications/,
    );
    // Another device's pass behind the same address, and the admin, are answered.
    expect((await get(server, passB.path, { authorization: `ApplePass ${passB.token}` })).status).toBe(200);
    expect((await get(server, '/admin/passes', { authorization: `Bearer ${adminToken}` })).status).toBe(200);
    // Guesses at pass B are counted on their own.
    expect((await get(server, passB.path, wrong)).status).toBe(401);

    const retryAfter = Number((await get(server, passA.path, wrong)).headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(50);
    expect(retryAfter).toBeLessThanOrEqual(60);
    clock.advance(61_000);
    expect((await get(server, passA.path, { authorization: `ApplePass ${passA.token}` })).status).toBe(200);
  });

  it('counts wrong admin tokens before comparing, and answers a blocked address the same bytes for any token', async () => {
    // A clock that stands still: the Retry-After in the body is then the same however slowly the answers come.
    const frozen = new Date();
    server = await startTestServer({
      clock: { now: () => frozen },
      rateLimits: { authFailuresPerMinute: 3 },
    });
    const pass = await createPass(server, 'beside-the-admin');
    const wrong = { authorization: 'Bearer not-the-admin-token-0000' };
    const right = { authorization: `Bearer ${adminToken}` };
    for (let i = 0; i < 3; i++) {
      const answer = await get(server, '/admin/passes', wrong);
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer');
    }
    const answers = [
      await get(server, '/admin/passes', wrong),
      await get(server, '/admin/passes', right),
      await get(server, '/admin/passes', {}),
      await get(server, '/admin/passes', wrong),
    ];
    // What may differ between two answers whatever they were sent: the time, the request's id, and the request
    // limit's count (each request counts one).
    const varying = new Set([
      'date',
      'x-request-id',
      'x-ratelimit-remaining',
      'x-ratelimit-reset',
      'retry-after',
    ]);
    const shape = async (answer: Response) => ({
      status: answer.status,
      headers: [...answer.headers].filter(([name]) => !varying.has(name)),
      names: [...answer.headers.keys()].sort(),
      body: await answer.text(),
    });
    const [first, ...others] = await Promise.all(answers.map(shape));
    expect(first?.status).toBe(429);
    expect(first?.names).not.toContain('www-authenticate');
    expect(first?.names).toContain('x-ratelimit-limit');
    for (const other of others) expect(other).toEqual(first);
    // The admin token's lockout is the admin token's: a pass's right token from the same address is answered.
    expect((await get(server, pass.path, { authorization: `ApplePass ${pass.token}` })).status).toBe(200);
  });

  it('counts wrong admin tokens in the request limit', async () => {
    server = await startTestServer({ rateLimits: { perMinute: 5 } });
    const wrong = { authorization: 'Bearer not-the-admin-token-0000' };
    for (let i = 0; i < 5; i++) expect((await get(server, '/admin/passes', wrong)).status).toBe(401);
    await expectTooMany(await get(server, '/admin/passes', wrong), /Rate limit exceeded/);
  });

  it('gives a parallel burst no more answers than the threshold', async () => {
    server = await startTestServer({ rateLimits: { authFailuresPerMinute: 3 } });
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

  it('keeps a lockout while the address sprays guesses at other passes', async () => {
    server = await startTestServer({ rateLimits: defaultRateLimits });
    const pass = await createPass(server, 'sprayed-around');
    const passType = pass.path.split('/')[3];
    const wrong = { authorization: 'ApplePass wrong-token-wrong-token-wrong-tok' };
    for (let i = 0; i < 10; i++) expect((await get(server, pass.path, wrong)).status).toBe(401);
    // More unknown passes than an address has room for, one failure each.
    for (let i = 0; i < 250; i++) {
      expect((await get(server, `/v1/passes/${passType}/spray-${i}`, wrong)).status).toBe(401);
    }
    await expectTooMany(await get(server, pass.path, wrong), /failed authentications/);
    await expectTooMany(
      await get(server, pass.path, { authorization: `ApplePass ${pass.token}` }),
      /failed authentications/,
    );
  });

  it('groups IPv6 addresses by their /64', async () => {
    server = await startTestServer({ trustProxy: ['127.0.0.1'], rateLimits: { authFailuresPerMinute: 2 } });
    const wrong = { authorization: 'Bearer not-the-admin-token-0000' };
    const right = { authorization: `Bearer ${adminToken}` };
    await get(server, '/admin/passes', { ...wrong, 'x-forwarded-for': '2001:db8:1:2::1' });
    await get(server, '/admin/passes', { ...wrong, 'x-forwarded-for': '2001:db8:1:2:ffff:ffff:ffff:ffff' });
    const sameSubnet = await get(server, '/admin/passes', {
      ...right,
      'x-forwarded-for': '2001:db8:1:2::99',
    });
    await expectTooMany(sameSubnet, /failed authentications/);
    const nextSubnet = await get(server, '/admin/passes', { ...right, 'x-forwarded-for': '2001:db8:1:3::1' });
    expect(nextSubnet.status).toBe(200);
  });
});

describe('a crowd behind one address, with the default limits', () => {
  it('updates 500 devices that register, then list and fetch after a change, while guessing is throttled', async () => {
    server = await startTestServer({ rateLimits: defaultRateLimits });
    const { baseUrl } = server;
    const pass = await createPass(server, 'stadium-gate');
    const [, , , passType, serialNumber] = pass.path.split('/');
    const first = await get(server, pass.path, { authorization: `ApplePass ${pass.token}` });
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    const lastModified = String(first.headers.get('last-modified'));
    // What Wallet sends (test/support/wallet-device.ts does it in full; here without unpacking 500 bundles).
    const devices = Array.from({ length: 500 }, (_, i) => `stadium-device-${i}`);
    const applePass = { authorization: `ApplePass ${pass.token}` };

    // Some at a time, as a crowd arrives; one address (127.0.0.1) for all of them.
    const registered = await inBatches(devices, async (device) => {
      const answer = await fetch(
        `${baseUrl}/v1/devices/${device}/registrations/${passType}/${serialNumber}`,
        {
          method: 'POST',
          headers: { ...applePass, 'content-type': 'application/json' },
          body: JSON.stringify({ pushToken: 'ab'.repeat(32) }),
        },
      );
      await answer.arrayBuffer();
      return answer.status;
    });
    expect(registered.filter((status) => status !== 201)).toEqual([]);

    // Someone behind the same address guesses another pass's token meanwhile: throttled after 10.
    const guessed = await createPass(server, 'guessed-at-the-gate');
    const wrong = { authorization: 'ApplePass wrong-token-wrong-token-wrong-tok' };
    for (let i = 0; i < 10; i++) expect((await get(server, guessed.path, wrong)).status).toBe(401);
    await expectTooMany(await get(server, guessed.path, wrong), /failed authentications/);

    const changed = await server.admin('PATCH', `/admin/passes/${passType}/${serialNumber}`, {
      fields: { points: 7 },
    });
    expect(changed.status).toBe(200);
    const updated = await inBatches(devices, async (device) => {
      const list = await get(server as TestServer, `/v1/devices/${device}/registrations/${passType}`);
      const { serialNumbers } = (await list.json()) as { serialNumbers: string[] };
      const latest = await get(server as TestServer, pass.path, {
        ...applePass,
        'if-modified-since': lastModified,
      });
      await latest.arrayBuffer();
      return `${list.status} ${serialNumbers.join()} ${latest.status}`;
    });
    expect(updated.filter((outcome) => outcome !== `200 ${serialNumber} 200`)).toEqual([]);
    // 1,500 requests and 500 registrations written: seconds on an idle machine, more when other suites share its cores.
  }, 120_000);
});

/** Runs the task for every item, 50 at a time. */
async function inBatches<T, R>(items: T[], task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let start = 0; start < items.length; start += 50) {
    results.push(...(await Promise.all(items.slice(start, start + 50).map(task))));
  }
  return results;
}

describe('TRUST_PROXY', () => {
  const wrong = { authorization: 'Bearer not-the-admin-token-0000' };
  const right = { authorization: `Bearer ${adminToken}` };

  it('counts per X-Forwarded-For address when the proxy is trusted, and logs that address', async () => {
    const { log, lines } = capturingLogger();
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
  it('defaults to generous request limits and a strict failure limit', () => {
    expect(loadConfig({}).rateLimits).toEqual(defaultRateLimits);
    expect(defaultRateLimits).toEqual({
      perMinute: 10_000,
      perDevicePerMinute: 120,
      perPassPerMinute: 1000,
      authFailuresPerMinute: 10,
    });
    expect(
      loadConfig({
        RATE_LIMIT_PER_MINUTE: '0',
        RATE_LIMIT_PER_DEVICE_PER_MINUTE: '30',
        RATE_LIMIT_PER_PASS_PER_MINUTE: '0',
        AUTH_FAILURES_PER_MINUTE: '5',
      }).rateLimits,
    ).toEqual({ perMinute: 0, perDevicePerMinute: 30, perPassPerMinute: 0, authFailuresPerMinute: 5 });
    expect(() => loadConfig({ AUTH_FAILURES_PER_MINUTE: '0' })).toThrow(/AUTH_FAILURES_PER_MINUTE/);
    expect(() => loadConfig({ RATE_LIMIT_PER_DEVICE_PER_MINUTE: '-1' })).toThrow(/RATE_LIMIT_PER_DEVICE/);
  });
});

describe('FailedAuthentications', () => {
  const table = (now: () => number) =>
    new FailedAuthentications({ limit: 2, windowMs: 60_000, now, maxTargetsPerAddress: 3, maxEntries: 6 });

  it('blocks a target from an address at the limit, until its window ends', () => {
    let now = 0;
    const failures = table(() => now);
    failures.record('a', 'x');
    expect(failures.blockedForMs('a', 'x')).toBe(0);
    now = 1000;
    failures.record('a', 'x');
    expect(failures.blockedForMs('a', 'x')).toBe(59_000);
    expect(failures.blockedForMs('a', 'y')).toBe(0);
    expect(failures.blockedForMs('b', 'x')).toBe(0);
    now = 60_000;
    expect(failures.blockedForMs('a', 'x')).toBe(0);
  });

  it('keeps a lockout when its address sprays other targets', () => {
    const failures = table(() => 0);
    failures.record('a', 'x');
    failures.record('a', 'x');
    for (let i = 0; i < 100; i++) failures.record('a', `spray-${i}`);
    expect(failures.blockedForMs('a', 'x')).toBe(60_000);
    // Its share is reused for new targets: the latest sprayed ones are counted.
    failures.record('a', 'spray-99');
    expect(failures.blockedForMs('a', 'spray-99')).toBe(60_000);
  });

  it('keeps lockouts when other addresses fill the table, dropping unblocked entries first', () => {
    const failures = table(() => 0);
    failures.record('a', 'x');
    failures.record('a', 'x');
    for (let i = 0; i < 100; i++) failures.record(`spray-${i}`, 'x');
    expect(failures.blockedForMs('a', 'x')).toBe(60_000);
    // The last sprayers are remembered, the first forgotten.
    failures.record('spray-99', 'x');
    expect(failures.blockedForMs('spray-99', 'x')).toBe(60_000);
    failures.record('spray-0', 'x');
    expect(failures.blockedForMs('spray-0', 'x')).toBe(0);
  });

  it('stays bounded when every entry is blocked: the oldest lockout goes last', () => {
    let now = 0;
    const failures = table(() => now);
    for (let i = 0; i < 8; i++) {
      now = i;
      failures.record(`address-${i}`, 'x');
      failures.record(`address-${i}`, 'x');
    }
    // Six entries at most: the first two lockouts made room for the last two.
    const blocked = Array.from({ length: 8 }, (_, i) => failures.blockedForMs(`address-${i}`, 'x') > 0);
    expect(blocked).toEqual([false, false, true, true, true, true, true, true]);
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
