/**
 * APNs push throughput: our client vs apns2 and @parse/node-apn, against test/support/mock-apns.ts.
 *
 * The mock runs in its own child process, and each measurement (client × scenario × repetition) in a fresh
 * child process, so the mock's CPU is not charged to a client and no client inherits another's warm state.
 * Lost pushes are counted by the mock: 20,000 − distinct push tokens it answered 200.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { generateProviderKey } from '../test/support/mock-apns.js';
import type {
  ClientName,
  FromMock,
  LoadJob,
  LoadResult,
  MockStats,
  Scenario,
  ToMock,
} from './apns-protocol.js';

const COUNT = Number(process.env.BENCH_APNS_COUNT ?? 20_000);
const REPEAT = Number(process.env.BENCH_APNS_REPEAT ?? 3);
/** A run not finished by then is killed and reported as timed out. */
const RUN_LIMIT_MS = Number(process.env.BENCH_APNS_RUN_LIMIT_MS ?? 30_000);
const TOPIC = 'pass.bench.example';
const KEY_ID = 'BENCHKEY01';
const TEAM_ID = 'BENCHTEAM1';
const ALL_CLIENTS: ClientName[] = ['ours', 'apns2', '@parse/node-apn'];
/** BENCH_APNS_CLIENTS=ours,apns2 runs a subset (ours is always run: the ratios are against it). */
const CLIENTS = ALL_CLIENTS.filter(
  (c) => c === 'ours' || (process.env.BENCH_APNS_CLIENTS ?? c).split(',').includes(c),
);
const SCENARIOS: Scenario[] = [
  { name: 'plain', latencyMs: 0, goawayAfterStreams: undefined, internalServerError: 0, tooManyRequests: 0 },
  {
    name: '20 ms latency',
    latencyMs: 20,
    goawayAfterStreams: undefined,
    internalServerError: 0,
    tooManyRequests: 0,
  },
  {
    name: 'GOAWAY/500 + 1% 500 + 1% 429',
    latencyMs: 0,
    goawayAfterStreams: 500,
    internalServerError: 0.01,
    tooManyRequests: 0.01,
  },
];

interface Measurement {
  /** Undefined: killed after RUN_LIMIT_MS. */
  result: LoadResult | undefined;
  stats: MockStats;
}

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

function spawn(file: string, args: string[] = []): ChildProcess {
  return fork(here(file), args, {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

class MockProcess {
  private constructor(private readonly child: ChildProcess) {}

  static async start(publicKeyPem: string): Promise<{ mock: MockProcess; origin: string; caPem: string }> {
    const child = spawn('./apns-mock.ts');
    child.on('exit', (code) => {
      if (code !== 0) {
        console.error(`mock process exited (${code})`);
        process.exit(1);
      }
    });
    const mock = new MockProcess(child);
    const ready = await mock.call({ type: 'start', publicKeyPem, keyId: KEY_ID, teamId: TEAM_ID });
    if (ready.type !== 'ready') throw new Error('mock did not start');
    return { mock, origin: ready.origin, caPem: ready.caPem };
  }

  async call(message: ToMock): Promise<FromMock> {
    const answer = once(this.child, 'message');
    this.child.send(message);
    const [reply] = await answer;
    return reply as FromMock;
  }

  async stats(): Promise<MockStats> {
    const reply = await this.call({ type: 'stats' });
    if (reply.type !== 'stats') throw new Error('unexpected reply from mock');
    return reply.stats;
  }

  stop(): void {
    this.child.disconnect();
  }
}

/** Runs one measurement in a fresh process; `undefined` if it did not finish within RUN_LIMIT_MS. */
async function load(job: LoadJob): Promise<LoadResult | undefined> {
  const child = spawn('./apns-load.ts', [JSON.stringify(job)]);
  let result: LoadResult | undefined;
  child.on('message', (message) => {
    result = message as LoadResult;
  });
  const limit = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
  // 'close' comes after the IPC channel closed, so after every message ('exit' may come before them).
  const [code, signal] = await once(child, 'close');
  clearTimeout(limit);
  if (result === undefined && signal !== 'SIGKILL') {
    throw new Error(`${job.client}: load process exited (${code}) without a result`);
  }
  return result;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Pushes per second; a run that timed out counts only what the mock acknowledged within the limit. */
function rate(m: Measurement): number {
  return m.result ? COUNT / (m.result.wallMs / 1000) : m.stats.acked / (RUN_LIMIT_MS / 1000);
}

/** Pushes the mock acknowledged per second of the run. */
function deliveredRate(m: Measurement): number {
  return m.stats.acked / ((m.result?.wallMs ?? RUN_LIMIT_MS) / 1000);
}

function rateText(m: Measurement): string {
  return m.result ? rate(m).toFixed(0) : `${rate(m).toFixed(0)} (timed out)`;
}

/** The repetition with the median rate (its loss and mock counters are reported with it). */
function medianRun(runs: Measurement[]): Measurement {
  const target = median(runs.map(rate));
  const found = runs.find((m) => rate(m) === target);
  if (!found) throw new Error('no runs');
  return found;
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

export async function benchApns(): Promise<void> {
  const { keyPem, publicKeyPem } = generateProviderKey();
  const { mock, origin, caPem } = await MockProcess.start(publicKeyPem);
  console.log(
    `APNs push benchmark: ${COUNT} distinct tokens per run, median of ${REPEAT}, node ${process.version}, ` +
      'mock in its own process, each run in a fresh process',
  );
  const rows: string[][] = [];
  try {
    for (const scenario of SCENARIOS) {
      const medians = new Map<ClientName, Measurement>();
      for (const client of CLIENTS) {
        const runs: Measurement[] = [];
        for (let r = 0; r < REPEAT; r++) {
          await mock.call({ type: 'configure', scenario });
          const job: LoadJob = {
            client,
            origin,
            caPem,
            keyPem,
            keyId: KEY_ID,
            teamId: TEAM_ID,
            topic: TOPIC,
            count: COUNT,
            retry: true,
          };
          const result = await load(job);
          // Answers still in flight when the client gave up are counted by the mock a moment later.
          await new Promise((resolve) => setTimeout(resolve, 200));
          const stats = await mock.stats();
          runs.push({ result, stats });
          const lost = COUNT - stats.acked;
          console.log(
            `  ${scenario.name} | ${client} | run ${r + 1}: ${rateText({ result, stats })}/s, ` +
              `lost ${lost}, client reported ok ${result?.reportedOk ?? '-'}, mock 200s ${stats.ok} ` +
              `errors ${JSON.stringify(stats.errors)} sessions ${stats.sessions} goaways ${stats.goaways} ` +
              `refused ${stats.refused}${client === 'ours' ? ` resends ${result?.resends ?? '-'}` : ''} ` +
              `client failures ${JSON.stringify(result?.failures ?? {})}`,
          );
        }
        medians.set(client, medianRun(runs));
      }
      const ours = medians.get('ours');
      for (const client of CLIENTS) {
        const m = medians.get(client);
        if (!m || !ours) continue;
        const ratio = client === 'ours' ? '1.00' : (rate(ours) / rate(m)).toFixed(2);
        rows.push([
          scenario.name,
          client,
          rateText(m),
          deliveredRate(m).toFixed(0),
          String(COUNT - m.stats.acked),
          m.result ? String(COUNT - m.result.reportedOk) : '-',
          ratio,
        ]);
      }
    }
  } finally {
    mock.stop();
  }
  const header = [
    'scenario',
    'client',
    'pushes/s',
    'delivered/s',
    'lost',
    'reported failed',
    'ours ÷ client',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => pad(c, widths[i] ?? 0, i >= 2)).join(' | ')} |`;
  console.log('');
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i >= 2 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`);
  for (const row of rows) console.log(line(row));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchApns();
