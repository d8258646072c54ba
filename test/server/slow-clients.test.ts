import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type ConnectionLimits, defaultConnectionLimits, loadConfig } from '../../src/config.js';
import { sample, scrape } from '../ops/metrics-text.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { WalletDevice } from '../support/wallet-device.js';

/*
 * Clients that connect and send nothing, or a byte now and then, on real sockets (node:net), against the app with
 * small timeouts so that the test takes seconds: each is answered 408 or closed, and meanwhile Wallet's requests and
 * /healthz are answered. Past the connection cap, new connections are closed at once.
 */
const small: ConnectionLimits = {
  requestTimeoutMs: 6000,
  headersTimeoutMs: 4000,
  keepAliveTimeoutMs: 1000,
  idleTimeoutMs: 8000,
  maxConnections: 200,
};
/** Slower than the timeouts allow for a whole request, faster than the idle timeout. */
const dripEveryMs = 2000;

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A raw connection: what it received, and when the server closed it (ms after it connected). */
interface RawClient {
  socket: Socket;
  received(): string;
  closed: Promise<number>;
}

function rawClient(baseUrl: string, first = ''): Promise<RawClient> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const started = Date.now();
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    // A reset after the server's 408 is still a close.
    socket.on('error', () => undefined);
    const closed = new Promise<number>((done) => socket.on('close', () => done(Date.now() - started)));
    socket.once('connect', () => {
      if (first) socket.write(first);
      resolve({ socket, received: () => received, closed });
    });
    socket.once('error', reject);
  });
}

/** The JSON body of a raw HTTP/1.1 answer. */
function errorBodyOf(answer: string): unknown {
  return JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
}

/** Writes `byte` every dripEveryMs while the socket is open. */
function drip(client: RawClient, byte: string): void {
  const timer = setInterval(() => {
    if (client.socket.writable) client.socket.write(byte);
  }, dripEveryMs);
  void client.closed.then(() => clearInterval(timer));
}

// Each test starts a server and then waits out the timeouts: more than the default 30 s on a busy machine.
describe('slow and idle clients', { timeout: 90_000 }, () => {
  it('are answered 408 or closed on the timeouts, while Wallet and /healthz are answered', async () => {
    const test = await startTestServer({ connections: small });
    server = test;
    const created = await test.admin('POST', '/admin/passes', { template: 'loyalty' });
    expect(created.status).toBe(201);
    const bundle = Buffer.from(await (await fetch(String(created.body.downloadUrl))).arrayBuffer());

    const idle = await Promise.all(Array.from({ length: 60 }, () => rawClient(test.baseUrl)));
    const slowHeaders = await Promise.all(
      Array.from({ length: 30 }, () => rawClient(test.baseUrl, 'GET /healthz HTTP/1.1\r\nHost: x\r\n')),
    );
    for (const client of slowHeaders) drip(client, 'X');
    const slowBodies = await Promise.all(
      Array.from({ length: 30 }, () =>
        rawClient(
          test.baseUrl,
          'POST /v1/log HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n',
        ),
      ),
    );
    for (const client of slowBodies) drip(client, ' ');
    const attackers = [...idle, ...slowHeaders, ...slowBodies];

    // While all 120 are held: a device adds the pass, lists, fetches and logs; the health check answers.
    const device = new WalletDevice();
    const answers = [
      (await device.add(bundle)).status,
      await device.listUpdated(test.baseUrl, String(created.body.passTypeIdentifier)),
      await device.fetchLatest(String(created.body.serialNumber)),
      (await device.log(test.baseUrl, ['Web service error'])).status,
      (await fetch(`${test.baseUrl}/healthz`)).status,
    ];
    expect(answers).toEqual([201, [created.body.serialNumber], 200, 200, 200]);
    // Answered while every one of the 120 was still held.
    expect(attackers.filter((client) => client.socket.closed)).toEqual([]);

    // Then every one of them is cut off: past the headers timeout (checked every quarter of it), or the request's.
    const slack = small.headersTimeoutMs / 4 + 1000;
    for (const client of [...idle, ...slowHeaders]) {
      expect(await client.closed).toBeLessThan(small.headersTimeoutMs + slack);
      expect(client.received()).toMatch(/^HTTP\/1\.1 408 /);
    }
    for (const client of slowBodies) {
      expect(await client.closed).toBeLessThan(small.requestTimeoutMs + slack);
      expect(client.received()).toMatch(/^HTTP\/1\.1 408 /);
    }
    // The one error body shape, also for what Node's parser answers before there is a request.
    for (const client of [...idle, ...slowHeaders, ...slowBodies]) {
      expect(errorBodyOf(client.received())).toMatchObject({ statusCode: 408, error: 'request_timeout' });
      expect(client.received()).toMatch(/\r\nX-Content-Type-Options: nosniff\r\n/);
    }
    expect((await fetch(`${test.baseUrl}/healthz`)).status).toBe(200);
  });

  it('answers oversized header fields 431 and bytes that are not HTTP 400, in the one error body', async () => {
    const test = await startTestServer({ connections: small });
    server = test;
    const huge = await rawClient(
      test.baseUrl,
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    const garbage = await rawClient(test.baseUrl, 'HELLO\x00 WORLD\r\n\r\n');
    await Promise.all([huge.closed, garbage.closed]);
    expect(huge.received()).toMatch(/^HTTP\/1\.1 431 /);
    expect(errorBodyOf(huge.received())).toMatchObject({ statusCode: 431, error: 'header_fields_too_large' });
    expect(garbage.received()).toMatch(/^HTTP\/1\.1 400 /);
    expect(errorBodyOf(garbage.received())).toMatchObject({ statusCode: 400, error: 'invalid' });
  });

  it('closes a keep-alive connection left idle after its answer', async () => {
    const test = await startTestServer({ connections: small });
    server = test;
    const client = await rawClient(test.baseUrl, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    // Node adds a second to keepAliveTimeout (keepAliveTimeoutBuffer) before it closes.
    expect(await client.closed).toBeLessThan(small.keepAliveTimeoutMs + 2500);
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('closes connections past the cap as they arrive, and serves again once the idle ones are gone', async () => {
    const test = await startTestServer({ connections: { ...small, maxConnections: 20 } });
    server = test;
    const held = await Promise.all(Array.from({ length: 20 }, () => rawClient(test.baseUrl)));
    await expect
      .poll(() => new Promise((done) => test.app.server.getConnections((_error, count) => done(count))))
      .toBe(20);

    const refused = await rawClient(test.baseUrl, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    // Closed unanswered, long before the held ones' headers timeout.
    expect(await refused.closed).toBeLessThan(small.headersTimeoutMs / 2);
    expect(refused.received()).toBe('');

    for (const client of held) await client.closed;
    expect((await fetch(`${test.baseUrl}/healthz`)).status).toBe(200);
    // Counted, so that an operator sees the cap being reached.
    const metrics = await scrape(`${test.baseUrl}/metrics`);
    expect(sample(metrics, 'passkit_http_connections_dropped_total')).toBe(1);
  });
});

describe('HTTP_* variables', () => {
  it('default to the documented limits, are read in seconds, and refuse a headers timeout past the request timeout', () => {
    expect(loadConfig({}).connections).toEqual(defaultConnectionLimits);
    expect(defaultConnectionLimits).toEqual({
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      keepAliveTimeoutMs: 72_000,
      idleTimeoutMs: 60_000,
      maxConnections: 4000,
    });
    expect(
      loadConfig({
        HTTP_REQUEST_TIMEOUT_SECONDS: '20',
        HTTP_HEADERS_TIMEOUT_SECONDS: '5',
        HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: '65',
        HTTP_IDLE_TIMEOUT_SECONDS: '120',
        HTTP_MAX_CONNECTIONS: '900',
      }).connections,
    ).toEqual({
      requestTimeoutMs: 20_000,
      headersTimeoutMs: 5000,
      keepAliveTimeoutMs: 65_000,
      idleTimeoutMs: 120_000,
      maxConnections: 900,
    });
    expect(() =>
      loadConfig({ HTTP_REQUEST_TIMEOUT_SECONDS: '5', HTTP_HEADERS_TIMEOUT_SECONDS: '10' }),
    ).toThrow(/HTTP_HEADERS_TIMEOUT_SECONDS/);
    expect(() => loadConfig({ HTTP_IDLE_TIMEOUT_SECONDS: '0' })).toThrow(/HTTP_IDLE_TIMEOUT_SECONDS/);
    expect(() => loadConfig({ HTTP_MAX_CONNECTIONS: 'many' })).toThrow(/HTTP_MAX_CONNECTIONS/);
  });
});
