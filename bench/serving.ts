/**
 * Serving: GET /v1/passes/{type}/{serial} of a pass whose bundle is cached, through the real app (built as
 * test/support/server.ts builds it, rate limits set high) against a bare node:http server answering the same bytes
 * with the headers a file download needs (Last-Modified, Cache-Control, Content-Type, Content-Length). Both 200s (the
 * bundle) and 304s (If-Modified-Since at the current version). A third side, not the target's baseline, is the bare
 * server also sending the headers ours adds (request id, security, rate limits), to show what they cost. The load
 * generator (bench/load.ts) runs in a child process; the servers are measured alternately, ROUNDS times each, and
 * the medians are compared. Two bundle sizes: the `event` template's (BENCH_SERVING_TEMPLATE; about 140 KB of
 * images) and a pass of a few KB (its pass.json and icons), where the per-request cost weighs most. Database:
 * BENCH_DATABASE_URL (PostgreSQL), or a fresh embedded PGlite.
 */
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createLogger } from '../src/logger.js';
import { projectRoot } from '../src/paths.js';
import { startTestServer } from '../test/support/server.js';
import { benchDatabase } from './database.js';
import { type LoadRequest, type LoadResult, runLoad } from './load.js';
import { perSecond, printTargets, type TargetLine } from './targets.js';

const CONNECTIONS = Number(process.env.BENCH_SERVING_CONNECTIONS ?? 64);
const PASSES = Number(process.env.BENCH_SERVING_PASSES ?? 50);
const ROUNDS = Number(process.env.BENCH_SERVING_ROUNDS ?? 3);
const DURATION_MS = Number(process.env.BENCH_SERVING_SECONDS ?? 5) * 1000;
const TEMPLATE = process.env.BENCH_SERVING_TEMPLATE ?? 'event';
// The app's logger as server.ts makes it (redaction, serializers), writing to /dev/null: BENCH_SERVING_LOG_LEVEL=info
// measures the two request lines every answer writes at the default LOG_LEVEL.
const log = createLogger({
  level: process.env.BENCH_SERVING_LOG_LEVEL ?? 'silent',
  destination: pino.destination('/dev/null'),
});

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};

export interface Side {
  name: string;
  runs: Array<LoadResult & { cpuMsPerThousand: number }>;
}

export function summarize(side: Side) {
  return {
    rps: median(side.runs.map((run) => run.requestsPerSecond)),
    p99: median(side.runs.map((run) => run.p99Ms)),
    p50: median(side.runs.map((run) => run.p50Ms)),
    errors: side.runs.reduce((sum, run) => sum + run.errors, 0),
    cpuMsPerThousand: median(side.runs.map((run) => run.cpuMsPerThousand)),
    statuses: side.runs.map((run) => Object.keys(run.statuses).join('/')).join(' '),
  };
}

/** Measures the sides alternately (a, b, a, b, …) so that other load on the machine falls on both alike. */
export async function alternate(
  sides: Array<{ name: string; port: number; requests: LoadRequest[] }>,
  rounds: number,
  durationMs: number,
  connections: number,
): Promise<Side[]> {
  const results: Side[] = sides.map((side) => ({ name: side.name, runs: [] }));
  for (let round = 0; round < rounds; round++) {
    for (const [index, side] of sides.entries()) {
      // CPU time of this process (the measured server; the load and PostgreSQL run in other processes) per
      // request: unlike requests/s, it hardly moves with what else the machine is doing.
      const cpuBefore = process.cpuUsage();
      const run = await runLoad({
        port: side.port,
        connections,
        warmupMs: 1000,
        durationMs,
        requests: side.requests,
      });
      const cpu = process.cpuUsage(cpuBefore);
      const cpuMsPerThousand = (cpu.user + cpu.system) / Math.max(1, run.completedInAll);
      results[index]?.runs.push({ ...run, cpuMsPerThousand });
    }
  }
  return results;
}

/** A cached-bundle case: the passes of one template on a fresh server and database, with the two bare servers. */
interface ServingCase {
  /** Shown in the table, e.g. "140 KB". */
  label: string;
  modelsDir: string;
  template: string;
  /** 304s carry no body, so they cost the same whatever the bundle's size: measured once, on the first case. */
  conditionals: boolean[];
}

interface Measured {
  label: string;
  conditional: boolean;
  bundleBytes: number;
  ours: ReturnType<typeof summarize>;
  bare: ReturnType<typeof summarize>;
  withHeaders: ReturnType<typeof summarize>;
}

async function measureCase(servingCase: ServingCase): Promise<Measured[]> {
  const { database, drop } = await benchDatabase();
  const server = await startTestServer({
    database,
    log,
    modelsDir: servingCase.modelsDir,
    rateLimits: {
      perMinute: 100_000_000,
      perDevicePerMinute: 100_000_000,
      perPassPerMinute: 100_000_000,
      authFailuresPerMinute: 100_000_000,
    },
  });
  const url = new URL(server.baseUrl);
  for (let i = 0; i < PASSES; i++) {
    const created = await server.admin('POST', '/admin/passes', {
      template: servingCase.template,
      serialNumber: `serve-${i}`,
      fields: {},
    });
    if (created.status !== 201)
      throw new Error(`create pass: ${created.status} ${JSON.stringify(created.body)}`);
  }
  // The admin API does not show authentication tokens; the database has them.
  const passes = await database.prisma.pass.findMany({
    select: { passTypeIdentifier: true, serialNumber: true, authenticationToken: true },
  });
  const first = passes[0];
  if (!first) throw new Error('no passes');
  const pathOf = (pass: (typeof passes)[number]) =>
    `/v1/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`;
  // One download of each, as a device downloads it, so every bundle is the cached one; the bare server sends the
  // same bytes with the same Last-Modified.
  const downloads = new Map<string, { bundle: Buffer; lastModified: string }>();
  for (const pass of passes) {
    const response = await fetch(`${server.baseUrl}${pathOf(pass)}`, {
      headers: { authorization: `ApplePass ${pass.authenticationToken}` },
    });
    downloads.set(pathOf(pass), {
      bundle: Buffer.from(await response.arrayBuffer()),
      lastModified: response.headers.get('last-modified') ?? '',
    });
  }
  const sample = downloads.get(pathOf(first));
  if (!sample) throw new Error('no download');

  // The headers our answers carry that the bare server's do not (request id, security and rate-limit headers), as
  // one of our 304s had them: a third side sends them too, to show what they cost.
  const ours304 = await fetch(`${server.baseUrl}${pathOf(first)}`, {
    headers: {
      authorization: `ApplePass ${first.authenticationToken}`,
      'if-modified-since': sample.lastModified,
    },
  });
  const bareHeaderNames = new Set(['last-modified', 'cache-control', 'date', 'connection', 'keep-alive']);
  const ourExtraHeaders = [...ours304.headers].filter(([name]) => !bareHeaderNames.has(name));

  // The bare server: a static-file server's minimum (find the file by path, a download's headers, the same 304
  // rule); no database, no framework. One bundle per pass, not one for all: 50 bundles do not fit in a CPU cache as
  // one does.
  const bareServer = (extraHeaders: Array<[string, string]>) =>
    createServer((request, response) => {
      const download = downloads.get(request.url ?? '');
      if (!download) {
        response.statusCode = 404;
        response.end();
        return;
      }
      const since = request.headers['if-modified-since'];
      response.setHeader('last-modified', download.lastModified);
      response.setHeader('cache-control', 'no-cache');
      for (const [name, value] of extraHeaders) response.setHeader(name, value);
      if (since && Date.parse(since) >= Date.parse(download.lastModified)) {
        response.statusCode = 304;
        response.end();
        return;
      }
      response.setHeader('content-type', 'application/vnd.apple.pkpass');
      response.setHeader('content-length', download.bundle.length);
      response.end(download.bundle);
    });
  const bare = bareServer([]);
  const bareWithHeaders = bareServer(ourExtraHeaders);
  const barePort = await listen(bare);
  const bareWithHeadersPort = await listen(bareWithHeaders);
  const ourPort = Number(url.port);

  const requests = (conditional: boolean): LoadRequest[] =>
    passes.map((pass) => ({
      method: 'GET',
      path: pathOf(pass),
      headers: {
        authorization: `ApplePass ${pass.authenticationToken}`,
        ...(conditional ? { 'if-modified-since': downloads.get(pathOf(pass))?.lastModified ?? '' } : {}),
      },
    }));

  console.log(
    `\nServing (bench/serving.ts), ${servingCase.label}: ${database.kind}, ${PASSES} passes of template ` +
      `"${servingCase.template}" (bundles of about ${sample.bundle.length} bytes), ${CONNECTIONS} keep-alive ` +
      `connections, ${ROUNDS}×${DURATION_MS / 1000} s per side, alternating, log level ${log.level}; medians`,
  );
  const measured: Measured[] = [];
  for (const conditional of servingCase.conditionals) {
    const sides = await alternate(
      [
        { name: 'ours', port: ourPort, requests: requests(conditional) },
        { name: 'bare', port: barePort, requests: requests(conditional) },
        { name: 'bare + our headers', port: bareWithHeadersPort, requests: requests(conditional) },
      ],
      ROUNDS,
      DURATION_MS,
      CONNECTIONS,
    );
    const [ours, baseline, withHeaders] = sides;
    if (!ours || !baseline || !withHeaders) throw new Error('no results');
    console.log(
      `  ${conditional ? '304' : '200'}: runs ${sides.map((side) => `${side.name} ${side.runs.map((r) => r.requestsPerSecond.toFixed(0)).join(', ')}`).join('; ')}`,
    );
    measured.push({
      label: servingCase.label,
      conditional,
      bundleBytes: sample.bundle.length,
      ours: summarize(ours),
      bare: summarize(baseline),
      withHeaders: summarize(withHeaders),
    });
  }

  await new Promise((resolve) => bare.close(resolve));
  await new Promise((resolve) => bareWithHeaders.close(resolve));
  await server.app.close();
  await database.close();
  await drop();
  return measured;
}

/**
 * A template of a few KB: the `event` template's pass.json and icons only (Apple requires the icon), where the
 * per-request cost weighs most against the bytes sent.
 */
async function smallModels(): Promise<{ dir: string; template: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-serving-'));
  const source = join(projectRoot, 'models', 'event.pass');
  await mkdir(join(dir, 'small.pass'));
  for (const file of ['pass.json', 'icon.png', 'icon@2x.png']) {
    await copyFile(join(source, file), join(dir, 'small.pass', file));
  }
  return { dir, template: 'small' };
}

export async function benchServing(): Promise<TargetLine[]> {
  const small = await smallModels();
  const measured: Measured[] = [];
  try {
    measured.push(
      ...(await measureCase({
        label: 'large bundle',
        modelsDir: join(projectRoot, 'models'),
        template: TEMPLATE,
        conditionals: [false, true],
      })),
      ...(await measureCase({
        label: 'small pass',
        modelsDir: small.dir,
        template: small.template,
        conditionals: [false],
      })),
    );
  } finally {
    await rm(small.dir, { recursive: true, force: true });
  }
  console.log(
    '\n| case | answer | ours r/s | ours p99 ms | bare r/s | bare p99 ms | ratio | CPU ms per 1000, ours / bare | ' +
      'bare + our headers r/s | ours ÷ that | its CPU ms per 1000 | statuses | errors |',
  );
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|');
  for (const { label, conditional, bundleBytes, ours: a, bare: b, withHeaders: c } of measured) {
    console.log(
      `| ${label} (${bundleBytes} B) | ${conditional ? '304 If-Modified-Since' : '200 bundle'} | ${a.rps.toFixed(0)} | ` +
        `${a.p99.toFixed(1)} | ${b.rps.toFixed(0)} | ${b.p99.toFixed(1)} | ${(a.rps / b.rps).toFixed(2)} | ` +
        `${a.cpuMsPerThousand.toFixed(1)} / ${b.cpuMsPerThousand.toFixed(1)} | ${c.rps.toFixed(0)} | ` +
        `${(a.rps / c.rps).toFixed(2)} | ${c.cpuMsPerThousand.toFixed(1)} | ${a.statuses} / ${b.statuses} | ` +
        `${a.errors}/${b.errors}/${c.errors} |`,
    );
  }
  const [full, notModified, smallFull] = measured;
  if (!full || !notModified || !smallFull) throw new Error('no results');
  const ratio = ({ ours, bare }: Measured) => ours.rps / bare.rps;
  const kb = ({ bundleBytes }: Measured) => `${Math.round(bundleBytes / 1024)} KB`;
  return [
    {
      figure: `Serving: GET /v1/passes/… 200, cached ${kb(full)} bundle ("${TEMPLATE}")`,
      ours: `${perSecond(full.ours.rps)} (${ratio(full).toFixed(2)}×)`,
      baseline: `${perSecond(full.bare.rps)} (bare node:http, same bytes)`,
      goal: '≥ 0.7× the bare server',
      met: ratio(full) >= 0.7,
    },
    {
      figure: 'Serving: 304 Not Modified (no body: the same for any bundle size)',
      ours:
        `${perSecond(notModified.ours.rps)} (${ratio(notModified).toFixed(2)}× bare), ` +
        `${notModified.ours.cpuMsPerThousand.toFixed(1)} µs CPU each against ${full.ours.cpuMsPerThousand.toFixed(1)} per 200`,
      baseline: `${perSecond(notModified.bare.rps)} (bare node:http)`,
      goal: '≥ 0.7× the bare server',
      met: ratio(notModified) >= 0.7,
    },
    {
      figure: `Serving: GET /v1/passes/… 200, cached ${kb(smallFull)} pass`,
      ours: `${perSecond(smallFull.ours.rps)} (${ratio(smallFull).toFixed(2)}×)`,
      baseline: `${perSecond(smallFull.bare.rps)} (bare node:http, same bytes)`,
      goal: '≥ 0.5× the bare server',
      met: ratio(smallFull) >= 0.5,
    },
  ];
}

if (process.argv[1] === import.meta.filename) printTargets(await benchServing());
