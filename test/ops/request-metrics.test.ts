import pino from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics, type MetricsOptions } from '../../src/ops/metrics.js';

const labelNames = ['route', 'method', 'status_code'] as const;
const families = ['passkit_http_requests_total', 'passkit_http_request_duration_seconds'];

/** What createMetrics recorded with prom-client's own Counter and Histogram: the reference to match. */
function reference() {
  const registry = new Registry();
  const requests = new Counter({
    name: 'passkit_http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status code.',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'passkit_http_request_duration_seconds',
    help: 'Time from receiving a request to the end of its answer, by route pattern, method and status code.',
    labelNames,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return {
    registry,
    observeRequest(route: string, method: string, statusCode: number, seconds: number) {
      const labels = { route, method, status_code: String(statusCode) };
      requests.inc(labels);
      duration.observe(labels, seconds);
    },
  };
}

/** The lines of one metric family (from its # HELP line to the blank line before the next). */
function family(text: string, name: string): string {
  const block = text.split('\n\n').find((lines) => lines.startsWith(`# HELP ${name} `));
  if (block === undefined) throw new Error(`${name} is not in the output`);
  return block.trimEnd();
}

// Bounds themselves (a value on a bound belongs to that bucket), values just either side, zero and beyond +Inf.
const durations = [
  0, 0.001, 0.0049999, 0.005, 0.0050001, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 10.5, 42,
];
// A series first seen after others of its route and method, and a route whose label needs escaping.
const series: Array<[string, string, number]> = [
  ['/v1/passes/:passTypeIdentifier/:serialNumber', 'GET', 200],
  ['/v1/log', 'POST', 200],
  ['/v1/passes/:passTypeIdentifier/:serialNumber', 'GET', 304],
  ['(unmatched)', 'GET', 404],
  ['/v1/passes/:passTypeIdentifier/:serialNumber', 'GET', 200],
  ['/odd/"quoted"\\back\nslash', 'PUT', 500],
];

describe('the request metrics', () => {
  it('render exactly as prom-client renders its own Counter and Histogram', async () => {
    // No scrape(), so no database is read.
    const metrics = createMetrics({
      repositories: {} as MetricsOptions['repositories'],
      clock: { now: () => new Date() },
      log: pino({ level: 'silent' }),
    });
    const expected = reference();
    const observe = (route: string, method: string, statusCode: number, seconds: number) => {
      metrics.observeRequest(route, method, statusCode, seconds);
      expected.observeRequest(route, method, statusCode, seconds);
    };

    for (const seconds of durations) {
      for (const [route, method, statusCode] of series) observe(route, method, statusCode, seconds);
    }
    for (const name of families) {
      expect(family(await metrics.registry.metrics(), name)).toBe(
        family(await expected.registry.metrics(), name),
      );
    }

    // Counting goes on after a scrape, and a new series joins the old ones.
    for (const seconds of durations)
      observe('/v1/passes/:passTypeIdentifier/:serialNumber', 'GET', 200, seconds);
    observe('/healthz', 'GET', 200, 0.005);
    const text = await metrics.registry.metrics();
    for (const name of families)
      expect(family(text, name)).toBe(family(await expected.registry.metrics(), name));
    expect(text).toContain(
      'passkit_http_request_duration_seconds_bucket{le="0.005",route="/healthz",method="GET",status_code="200"} 1',
    );
  });
});
