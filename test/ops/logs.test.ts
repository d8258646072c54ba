import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { capturingLogger } from '../support/log-lines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { WalletDevice } from '../support/wallet-device.js';

/* The logger as server.ts makes it (src/logger.ts), writing into `lines` instead of stdout. */
const { log, lines } = capturingLogger();
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ log });
});

afterAll(async () => {
  await server?.close();
});

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function linesOf(requestId: string) {
  return lines.filter((line) => line.reqId === requestId);
}

describe('request ids', () => {
  it('keeps a sane x-request-id, echoes it, and puts it on every log line of the request', async () => {
    const from = lines.length;
    const response = await fetch(`${server.baseUrl}/admin/templates`, {
      headers: { authorization: 'Bearer wrong-token', 'x-request-id': 'edge-7f3a.42' },
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('x-request-id')).toBe('edge-7f3a.42');
    const written = lines.slice(from);
    expect(written.length).toBeGreaterThanOrEqual(1);
    for (const line of written) expect(line.reqId).toBe('edge-7f3a.42');
    expect(written.map((line) => line.msg)).toContain('request completed');
  });

  it('generates a UUID when the client sends none, or one that is not short and plain', async () => {
    for (const given of [undefined, 'has spaces and "quotes"', 'x'.repeat(200)]) {
      const response = await fetch(`${server.baseUrl}/admin/templates`, {
        headers: given === undefined ? {} : { 'x-request-id': given },
      });
      const id = response.headers.get('x-request-id') ?? '';
      expect(id).toMatch(uuid);
      expect(linesOf(id).length).toBeGreaterThanOrEqual(1);
    }
  });

  it('echoes the id on answers that match no route and on errors', async () => {
    const notFound = await fetch(`${server.baseUrl}/nowhere`, { headers: { 'x-request-id': 'nf-1' } });
    expect([notFound.status, notFound.headers.get('x-request-id')]).toEqual([404, 'nf-1']);
    const badBody = await fetch(`${server.baseUrl}/v1/log`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'bad-1' },
      body: '{not json',
    });
    expect([badBody.status, badBody.headers.get('x-request-id')]).toEqual([400, 'bad-1']);
  });
});

describe('access log', () => {
  it('writes one line per request at info: the request, the status and the time', async () => {
    const response = await fetch(`${server.baseUrl}/admin/templates`, {
      headers: { 'x-request-id': 'acc-1' },
    });
    expect(response.status).toBe(401);
    await response.arrayBuffer();
    const mine = linesOf('acc-1');
    expect(mine.map((line) => line.msg)).toEqual(['request completed']);
    expect(mine[0]).toMatchObject({
      level: 30,
      req: { id: 'acc-1', method: 'GET', url: '/admin/templates', remoteAddress: '127.0.0.1' },
      res: { statusCode: 401 },
      responseTime: expect.any(Number),
    });
  });

  it('also writes `incoming request` at debug', async () => {
    const debugLines: Array<Record<string, unknown>> = [];
    const debugServer = await startTestServer({
      log: createLogger({
        level: 'debug',
        destination: {
          write: (line: string) => debugLines.push(JSON.parse(line) as Record<string, unknown>),
        },
      }),
    });
    try {
      const response = await fetch(`${debugServer.baseUrl}/admin/templates`, {
        headers: { 'x-request-id': 'dbg-1' },
      });
      await response.arrayBuffer();
      const mine = debugLines.filter((line) => line.reqId === 'dbg-1');
      expect(mine.map((line) => [line.level, line.msg])).toEqual([
        [20, 'incoming request'],
        [30, 'request completed'],
      ]);
    } finally {
      await debugServer.close();
    }
  });
});

describe('secrets in logs', () => {
  it('never writes the admin token, authentication tokens, push tokens or device library identifiers', async () => {
    const from = lines.length;
    const created = await server.admin('POST', '/admin/passes', { template: 'loyalty' });
    const downloadUrl = String(created.body.downloadUrl);
    const bundle = Buffer.from(await (await fetch(downloadUrl)).arrayBuffer());
    const device = new WalletDevice();
    expect((await device.add(bundle)).status).toBe(201);
    const authenticationToken = String(device.held(String(created.body.serialNumber)).authenticationToken);
    const text = lines
      .slice(from)
      .map((line) => JSON.stringify(line))
      .join('\n');
    expect(text).toContain('request completed');
    expect(text).not.toContain('test-admin-token');
    expect(text).not.toContain(authenticationToken);
    expect(text).not.toContain(device.pushToken);
    expect(text).not.toContain(device.deviceLibraryIdentifier);
    // The download link's signature is a credential too.
    expect(text).not.toContain(new URL(downloadUrl).searchParams.get('signature') ?? '');
  });
});
