/*
 * Apple's "Get the latest version of a pass" (GET /v1/passes/{passTypeIdentifier}/{serialNumber}) over real HTTP:
 * the bundle from memory or signed anew, 304 at or after Last-Modified, and what every answer of the app carries
 * (request id, security and rate-limit headers, request metrics, one access log line).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capturingLogger } from '../../support/log-lines.js';
import { startTestServer, type TestServer } from '../../support/server.js';
import { type CreatedPass, createPass } from './pass-fixtures.js';

const { log, lines } = capturingLogger();
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ log, rateLimits: { perMinute: 1000, authFailuresPerMinute: 1000 } });
});
afterAll(async () => {
  await server?.close();
});

const authorized = (pass: CreatedPass, extra: Record<string, string> = {}) => ({
  authorization: `ApplePass ${pass.authenticationToken}`,
  ...extra,
});

/** A request with its whole answer read: a body left unread would keep its connection, and close(), waiting. */
async function get(test: TestServer, path: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${test.baseUrl}${path}`, { headers });
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, body };
}

describe('the latest version of a pass', () => {
  it('answers 200 with the bundle, and 304 at or after Last-Modified', async () => {
    const pass = await createPass(server);
    const first = await get(server, pass.path, authorized(pass));
    expect(first.status).toBe(200);
    const bundle = first.body;
    const lastModified = first.headers.get('last-modified') ?? '';

    // The second answer comes from the bundle cache: the same bytes.
    const ok = await get(server, pass.path, authorized(pass));
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual(bundle);
    expect(ok.headers.get('content-type')).toBe('application/vnd.apple.pkpass');
    expect(ok.headers.get('last-modified')).toBe(lastModified);
    expect(ok.headers.get('cache-control')).toBe('no-cache');
    expect(ok.headers.get('x-content-type-options')).toBe('nosniff');
    expect(ok.headers.get('x-ratelimit-limit')).toBe('1000');
    expect(ok.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    const later = new Date(Date.parse(lastModified) + 5000).toUTCString();
    for (const since of [lastModified, later]) {
      const notModified = await get(server, pass.path, authorized(pass, { 'if-modified-since': since }));
      expect(notModified.status).toBe(304);
      expect(notModified.headers.get('last-modified')).toBe(lastModified);
      expect(notModified.headers.get('cache-control')).toBe('no-cache');
    }
    const earlier = new Date(Date.parse(lastModified) - 1000).toUTCString();
    expect((await get(server, pass.path, authorized(pass, { 'if-modified-since': earlier }))).status).toBe(
      200,
    );
  });

  it('answers the new version once it changed in SQL, not 304 at the old Last-Modified', async () => {
    const pass = await createPass(server);
    const before = await get(server, pass.path, authorized(pass));
    const lastModified = before.headers.get('last-modified') ?? '';
    await server.database.prisma.$executeRawUnsafe(
      `UPDATE passes SET version = version + 1, last_modified = last_modified + interval '1 second'
       WHERE pass_type_identifier = $1 AND serial_number = $2`,
      pass.passTypeIdentifier,
      pass.serialNumber,
    );
    // The change is seen on the very next request (the feed's fence).
    const after = await get(server, pass.path, authorized(pass, { 'if-modified-since': lastModified }));
    expect(after.status).toBe(200);
    expect(after.headers.get('last-modified')).not.toBe(lastModified);
  });

  it('records the request metrics by route pattern', async () => {
    const pass = await createPass(server);
    const answers = [];
    for (let i = 0; i < 2; i++) answers.push((await get(server, pass.path, authorized(pass))).status);
    expect(answers).toEqual([200, 200]);
    const text = (await get(server, '/metrics')).body.toString();
    expect(text).toMatch(
      /passkit_http_requests_total\{route="\/v1\/passes\/:passTypeIdentifier\/:serialNumber",method="GET",status_code="200"\} \d+/,
    );
  });

  it('writes one access line, with the request id and no secrets', async () => {
    const pass = await createPass(server);
    await get(server, pass.path, authorized(pass));
    const answer = await get(server, pass.path, authorized(pass, { 'x-request-id': 'pass-1' }));
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-request-id')).toBe('pass-1');
    const mine = lines.filter((line) => line.reqId === 'pass-1');
    expect(mine.map((line) => line.msg)).toEqual(['request completed']);
    expect(mine[0]?.req).toEqual({ id: 'pass-1', method: 'GET', url: pass.path, remoteAddress: '127.0.0.1' });
    expect(mine[0]?.res).toEqual({ statusCode: 200 });
    expect(mine[0]?.responseTime).toEqual(expect.any(Number));
    expect(JSON.stringify(lines)).not.toContain(pass.authenticationToken);
  });
});

describe('the general budget on pass downloads', () => {
  it('counts each request once, and answers 429 past the budget', async () => {
    const limited = await startTestServer({ rateLimits: { perMinute: 3, authFailuresPerMinute: 1000 } });
    try {
      const pass = await createPass(limited);
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const answer = await get(limited, pass.path, authorized(pass));
        statuses.push(answer.status);
        if (i < 3) expect(answer.headers.get('x-ratelimit-remaining')).toBe(String(2 - i));
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
    } finally {
      await limited.close();
    }
  });
});
