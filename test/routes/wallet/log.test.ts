import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultDeviceLogs, loadConfig } from '../../../src/config.js';
import { capturingLogger } from '../../support/log-lines.js';
import { startTestServer, type TestServer } from '../../support/server.js';

/*
 * POST /v1/log takes no credentials (Apple's "Log a message"), so what one client can make it store and log is
 * bounded: bytes and messages per request, requests per address, and one log line per request.
 */
const { log, lines } = capturingLogger();
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ log });
});
afterAll(async () => {
  await server?.close();
});

function postLog(body: string, headers: Record<string, string> = {}) {
  return fetch(`${server.baseUrl}/v1/log`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

async function expectError(response: Response, statusCode: number, message: RegExp) {
  expect(response.status).toBe(statusCode);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  expect(await response.json()).toEqual({
    statusCode,
    error: expect.any(String),
    message: expect.stringMatching(message),
  });
}

describe('POST /v1/log', () => {
  it('answers a body over 16 KB with 413 in the JSON error body, and stores nothing of it', async () => {
    const before = await server.database.prisma.deviceLog.count();
    // Each message is within the 10,000 characters a message may have; together they are 20 KB.
    const body = JSON.stringify({ logs: ['a'.repeat(10_000), 'b'.repeat(10_000)] });
    await expectError(await postLog(body), 413, /body/i);
    expect(await server.database.prisma.deviceLog.count()).toBe(before);
  });

  it('answers more than 100 messages with 400 naming logs', async () => {
    const body = JSON.stringify({ logs: Array.from({ length: 101 }, () => '') });
    await expectError(await postLog(body), 400, /logs/);
  });

  it('stores the messages and logs one line for the request, without them', async () => {
    const messages = Array.from(
      { length: 50 },
      (_, i) => `Web service error for pass.com.example (https://example.com): message ${i} ünïcode`,
    );
    const response = await postLog(JSON.stringify({ logs: messages }), { 'x-request-id': 'log-lines-1' });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({});

    const stored = await server.admin('GET', '/admin/logs?limit=50');
    expect((stored.body.logs as Array<{ message: string }>).map((log) => log.message).reverse()).toEqual(
      messages,
    );
    const mine = lines.filter((line) => line.reqId === 'log-lines-1');
    expect(mine.map((line) => [line.level, line.msg])).toEqual([
      [40, 'Wallet device logs stored'],
      [30, 'request completed'],
    ]);
    expect(mine[0]?.deviceLogs).toEqual({
      messages: 50,
      bytes: messages.reduce((sum, message) => sum + Buffer.byteLength(message), 0),
    });
    expect(JSON.stringify(mine)).not.toContain('message 7');
  });
});

describe('POST /v1/log request limit', () => {
  it('answers an address past DEVICE_LOG_REQUESTS_PER_MINUTE with 429, and leaves the rest of /v1 alone', async () => {
    const limited = await startTestServer({ deviceLogRequestsPerMinute: 3 });
    try {
      const post = () =>
        fetch(`${limited.baseUrl}/v1/log`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"logs":["x"]}',
        });
      for (let i = 0; i < 3; i++) {
        const response = await post();
        expect(response.status).toBe(200);
        expect(response.headers.get('x-ratelimit-limit')).toBe('3');
      }
      const refused = await post();
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      await expectError(refused, 429, /at most 3 requests a minute/);
      expect(await limited.database.prisma.deviceLog.count()).toBe(3);
      // Wallet's other endpoints from the same address are still answered.
      const list = await fetch(`${limited.baseUrl}/v1/devices/d1/registrations/pass.com.example`);
      expect(list.status).toBe(204);
      expect((await fetch(`${limited.baseUrl}/healthz`)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe('DEVICE_LOG_* variables', () => {
  it('default to 20 requests a minute, 30 days and 100,000 messages, and refuse 0', () => {
    expect(loadConfig({}).deviceLogs).toEqual(defaultDeviceLogs);
    expect(defaultDeviceLogs).toEqual({ requestsPerMinute: 20, retentionDays: 30, maxRows: 100_000 });
    expect(
      loadConfig({
        DEVICE_LOG_REQUESTS_PER_MINUTE: '5',
        DEVICE_LOG_RETENTION_DAYS: '7',
        DEVICE_LOG_MAX_ROWS: '5000',
      }).deviceLogs,
    ).toEqual({ requestsPerMinute: 5, retentionDays: 7, maxRows: 5000 });
    for (const name of ['DEVICE_LOG_REQUESTS_PER_MINUTE', 'DEVICE_LOG_RETENTION_DAYS', 'DEVICE_LOG_MAX_ROWS'])
      expect(() => loadConfig({ [name]: '0' })).toThrow(name);
  });
});
