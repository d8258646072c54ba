/**
 * Scale out: 1, 2 and 3 server instances share one push outbox in one PostgreSQL database. Each instance is a child
 * process running the real push worker and APNs client (bench/scale-out-worker.ts); the mock APNs runs in its own
 * child process (bench/mock-process.ts) and counts what it answered. Per instance count, on a fresh database:
 * the instances start, BENCH_SCALEOUT_PUSHES outbox rows (60,000 by default) for distinct push tokens are enqueued
 * in one statement, every instance is woken, and the clock runs until the mock has answered 200 for every token.
 * - duplicates: 200 answers beyond one per token (a push sent twice; no faults are injected, so no retries);
 * - lost: tokens never answered within 120 s, plus rows left in the outbox.
 * BENCH_SCALEOUT_RUNS runs per instance count (3 by default); the median time is reported.
 * Needs PostgreSQL: BENCH_DATABASE_URL (PGlite is one process's embedded database, so there is nothing to share).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { openDatabase } from '../src/db/database.js';
import { createFreshPostgresDatabase } from '../test/support/database.js';
import { generateProviderKey } from '../test/support/mock-apns.js';
import { MockApnsProcess } from './mock-process.js';
import type { FromScaleOutWorker, ScaleOutWorkerJob, ToScaleOutWorker } from './scale-out-worker.js';
import { perSecond, skippedLine, type TargetLine } from './targets.js';

const PUSHES = Number(process.env.BENCH_SCALEOUT_PUSHES ?? 60_000);
const RUNS = Number(process.env.BENCH_SCALEOUT_RUNS ?? 3);
const INSTANCES = [1, 2, 3];
const KEY_ID = 'SCALEKEY01';
const TEAM_ID = 'TESTTEAM01';
const TOPIC = 'pass.bench.example';
const log = pino({ level: 'silent' });

interface RunResult {
  ms: number;
  /** Pushes delivered by each instance. */
  split: number[];
  duplicates: number;
  lost: number;
}

class Instance {
  private constructor(private readonly child: ChildProcess) {}

  static async start(job: ScaleOutWorkerJob): Promise<Instance> {
    const child = fork(
      fileURLToPath(new URL('./scale-out-worker.ts', import.meta.url)),
      [JSON.stringify(job)],
      {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    const [ready] = (await once(child, 'message')) as [FromScaleOutWorker];
    if (ready.type !== 'ready') throw new Error('scale-out worker did not start');
    return new Instance(child);
  }

  send(message: ToScaleOutWorker): void {
    this.child.send(message);
  }

  /** Stops the instance; how many pushes it delivered. */
  async stop(): Promise<number> {
    const exited = once(this.child, 'exit');
    let delivered = Number.NaN;
    this.child.on('message', (message: FromScaleOutWorker) => {
      if (message.type === 'stopped') delivered = message.delivered;
    });
    this.send({ type: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
    return delivered;
  }
}

async function runOnce(
  baseUrl: string,
  mock: MockApnsProcess,
  key: { keyPem: string },
  instances: number,
): Promise<RunResult> {
  const fresh = await createFreshPostgresDatabase(baseUrl);
  // Opening the database applies the migrations; the instances then only connect.
  const database = await openDatabase({ databaseUrl: fresh.url, dataDir: '', log });
  const job: ScaleOutWorkerJob = {
    databaseUrl: fresh.url,
    origin: mock.origin,
    caPem: mock.caPem,
    keyPem: key.keyPem,
    keyId: KEY_ID,
    teamId: TEAM_ID,
    maxConcurrentStreams: 1000,
  };
  const workers = await Promise.all(Array.from({ length: instances }, () => Instance.start(job)));
  let stopped = false;
  try {
    await mock.reset();
    const started = performance.now();
    await database.prisma.$executeRaw`
      INSERT INTO push_outbox (push_token, pass_type_identifier)
      SELECT md5(i::text) || md5((i + 1)::text), ${TOPIC} FROM generate_series(1, ${PUSHES}) AS i`;
    for (const worker of workers) worker.send({ type: 'go' });
    let acked = 0;
    try {
      acked = (await mock.waitForAcked(PUSHES, 120_000)).acked;
    } catch {
      acked = (await mock.stats()).acked;
    }
    const ms = performance.now() - started;
    // Late duplicates (a second send of a row already answered) would arrive just after: give them a moment.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const stats = await mock.stats();
    const [left] = await database.prisma.$queryRaw<Array<{ count: bigint }>>`
      SELECT count(*) AS count FROM push_outbox`;
    const split = await Promise.all(workers.map((worker) => worker.stop()));
    stopped = true;
    return { ms, split, duplicates: stats.ok - stats.acked, lost: PUSHES - acked + Number(left?.count ?? 0) };
  } finally {
    if (!stopped) await Promise.all(workers.map((worker) => worker.stop()));
    await database.close();
    await fresh.drop();
  }
}

const scaleOutFigure = (instances: number) =>
  `Scale out: ${instances} instance${instances === 1 ? '' : 's'}, ${PUSHES.toLocaleString('en-US')} pushes from one outbox`;
const scaleOutGoal = 'shared: none sent twice (no faults injected), none lost; throughput reported';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

export async function benchScaleOut(): Promise<TargetLine[]> {
  const baseUrl = process.env.BENCH_DATABASE_URL;
  if (!baseUrl) {
    console.log('\n## Scale out: skipped (needs BENCH_DATABASE_URL=postgres://…; PGlite cannot be shared)');
    return INSTANCES.map((instances) => skippedLine(scaleOutFigure(instances), scaleOutGoal));
  }
  const key = generateProviderKey();
  const mock = await MockApnsProcess.start({
    publicKeyPem: key.publicKeyPem,
    keyId: KEY_ID,
    teamId: TEAM_ID,
  });
  try {
    const rows: string[] = [];
    const lines: TargetLine[] = [];
    let single = Number.NaN;
    for (const instances of INSTANCES) {
      const results: RunResult[] = [];
      for (let run = 0; run < RUNS; run++) results.push(await runOnce(baseUrl, mock, key, instances));
      const ms = median(results.map((result) => result.ms));
      const rate = PUSHES / (ms / 1000);
      if (instances === 1) single = rate;
      const duplicates = results.reduce((sum, result) => sum + result.duplicates, 0);
      const lost = results.reduce((sum, result) => sum + result.lost, 0);
      lines.push({
        figure: scaleOutFigure(instances),
        ours: `${perSecond(rate)} (${(rate / single).toFixed(2)}× one instance), ${duplicates} sent twice, ${lost} lost`,
        baseline: instances === 1 ? '' : `${perSecond(single)} (one instance)`,
        goal: scaleOutGoal,
        met: duplicates === 0 && lost === 0,
      });
      rows.push(
        `| ${instances} | ${(ms / 1000).toFixed(2)} s | ${Math.round(rate)} | ${(rate / single).toFixed(2)} | ${results.map((r) => (r.ms / 1000).toFixed(2)).join(', ')} | ${results.map((r) => r.duplicates).join(', ')} | ${results.map((r) => r.lost).join(', ')} | ${results.map((r) => r.split.join('/')).join(', ')} |`,
      );
    }
    console.log(`\n## Scale out: ${PUSHES} pushes from one shared outbox (PostgreSQL, median of ${RUNS})`);
    console.log(
      '| instances | all acknowledged | pushes/s | ÷ 1 instance | runs (s) | duplicates | lost | delivered per instance |',
    );
    console.log('| ---: | ---: | ---: | ---: | --- | --- | --- | --- |');
    for (const row of rows) console.log(row);
    return lines;
  } finally {
    await mock.stop();
  }
}
