import { connect } from 'node:net';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConnectionLimits, loadConfig } from '../../src/config.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { startMetricsServer } from '../../src/ops/metrics-server.js';
import { openTestDatabase, serverDataEnv } from '../support/database.js';
import { freePort, startServerProcess } from '../support/process.js';
import { startTestServer } from '../support/server.js';
import { sample, scrape } from './metrics-text.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('METRICS_PORT', () => {
  it('is optional, a port number, and not PORT', () => {
    expect(loadConfig({}).metricsPort).toBeUndefined();
    expect(loadConfig({ METRICS_PORT: '' }).metricsPort).toBeUndefined();
    expect(loadConfig({ METRICS_PORT: '9100' }).metricsPort).toBe(9100);
    expect(() => loadConfig({ METRICS_PORT: 'metrics' })).toThrow(/METRICS_PORT/);
    expect(() => loadConfig({ METRICS_PORT: '70000' })).toThrow(/METRICS_PORT/);
    expect(() => loadConfig({ PORT: '8080', METRICS_PORT: '8080' })).toThrow(/METRICS_PORT: must differ/);
  });

  it('serves /metrics on its own port only, in the server as `npm start` runs it', async () => {
    const metricsPort = await freePort();
    const env: Record<string, string> = {
      ADMIN_TOKEN: 'metrics-port-admin-token-0123456789',
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'warn',
      ...(await serverDataEnv(cleanups)),
    };
    // Started means /readyz answered 200: database, migrations, signing identity and push worker all in place.
    const server = await startServerProcess(env);
    cleanups.push(async () => {
      if (server.child.exitCode === null) server.child.kill('SIGKILL');
    });

    const main = await fetch(`${server.baseUrl}/metrics`, { headers: { 'x-request-id': 'probe-1' } });
    expect(main.status).toBe(404);
    expect(main.headers.get('x-request-id')).toBe('probe-1');
    const text = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(sample(text, 'passkit_database_up')).toBe(1);
    expect(sample(text, 'passkit_passes')).toBe(0);
    expect(
      sample(text, 'passkit_http_requests_total', {
        route: '(unmatched)',
        method: 'GET',
        status_code: '404',
      }),
    ).toBe(1);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(404);

    // SIGTERM closes the metrics port with the rest, and the process exits cleanly.
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${metricsPort}/metrics`)).rejects.toThrow();
  }, 90_000);
});

describe('metrics registries', () => {
  it('belong to one app each: two apps in one process count apart', async () => {
    const first = await startTestServer();
    cleanups.push(() => first.close());
    const second = await startTestServer();
    cleanups.push(() => second.close());
    await first.admin('GET', '/admin/templates');
    await first.admin('GET', '/admin/templates');
    await second.admin('GET', '/admin/templates');
    const templates = { route: '/admin/templates', method: 'GET', status_code: '200' };
    expect(sample(await scrape(`${first.baseUrl}/metrics`), 'passkit_http_requests_total', templates)).toBe(
      2,
    );
    expect(sample(await scrape(`${second.baseUrl}/metrics`), 'passkit_http_requests_total', templates)).toBe(
      1,
    );
  });

  it('can be served by startMetricsServer while the app leaves /metrics out', async () => {
    const log = pino({ level: 'silent' });
    const database = await openTestDatabase();
    const metrics = createMetrics({
      repositories: database.repositories,
      clock: { now: () => new Date() },
      log,
    });
    const app = await startTestServer({ database, ops: { metrics, metricsOnMainPort: false } });
    cleanups.push(() => app.close());
    // The main port's limits, small: a client that sends half its headers and then nothing is answered 408.
    const connections = { ...defaultConnectionLimits, headersTimeoutMs: 1_000, requestTimeoutMs: 2_000 };
    const metricsServer = await startMetricsServer({ metrics, port: 0, host: '127.0.0.1', log, connections });
    cleanups.push(() => metricsServer.close());
    const slow = connect(metricsServer.port, '127.0.0.1');
    let answered = '';
    slow.setEncoding('utf8').on('data', (chunk: string) => {
      answered += chunk;
    });
    slow.on('error', () => undefined);
    const closedAfter = new Promise<number>((resolve) => {
      const started = Date.now();
      slow.on('close', () => resolve(Date.now() - started));
    });
    slow.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    expect(await closedAfter).toBeLessThan(5_000);
    expect(answered).toMatch(/^HTTP\/1\.1 408 /);

    expect((await fetch(`${app.baseUrl}/metrics`)).status).toBe(404);
    await app.admin('GET', '/admin/templates');
    const text = await scrape(`http://127.0.0.1:${metricsServer.port}/metrics`);
    const templates = { route: '/admin/templates', method: 'GET', status_code: '200' };
    expect(sample(text, 'passkit_http_requests_total', templates)).toBe(1);
    expect((await fetch(`http://127.0.0.1:${metricsServer.port}/other`)).status).toBe(404);
  });
});
