/**
 * The mock APNs (bench/apns-mock.ts) in a child process, for the fan-out and scale-out benchmarks: Apple's side
 * runs elsewhere in production, so its HTTP/2 + TLS work must not be charged to the server process measured.
 * It counts, per `reset()`, the distinct push tokens it answered 200 and every 200 it gave.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { FromMock, MockStats, ToMock } from './apns-protocol.js';

export class MockApnsProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly origin: string,
    readonly caPem: string,
  ) {}

  static async start(options: { publicKeyPem: string; keyId: string; teamId: string }) {
    const child = fork(fileURLToPath(new URL('./apns-mock.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const answer = once(child, 'message');
    child.send({ type: 'start', ...options } satisfies ToMock);
    const [ready] = (await answer) as [FromMock];
    if (ready.type !== 'ready') throw new Error('mock APNs did not start');
    return new MockApnsProcess(child, ready.origin, ready.caPem);
  }

  private async call(message: ToMock): Promise<FromMock> {
    const answer = once(this.child, 'message');
    this.child.send(message);
    const [reply] = (await answer) as [FromMock];
    return reply;
  }

  /** Starts counting afresh, with no latency and no injected faults. */
  async reset(): Promise<void> {
    await this.call({
      type: 'configure',
      scenario: {
        name: 'plain',
        latencyMs: 0,
        goawayAfterStreams: undefined,
        internalServerError: 0,
        tooManyRequests: 0,
      },
    });
  }

  async stats(): Promise<MockStats> {
    const reply = await this.call({ type: 'stats' });
    if (reply.type !== 'stats') throw new Error('unexpected reply from the mock APNs');
    return reply.stats;
  }

  /** Polls until `acked` distinct tokens were answered 200; the stats at that moment. */
  async waitForAcked(acked: number, timeoutMs: number): Promise<MockStats> {
    const started = performance.now();
    for (;;) {
      const stats = await this.stats();
      if (stats.acked >= acked) return stats;
      if (performance.now() - started > timeoutMs)
        throw new Error(`only ${stats.acked} of ${acked} pushes acknowledged after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async stop(): Promise<void> {
    const exited = once(this.child, 'exit');
    // The mock closes its server and exits when the channel closes.
    this.child.disconnect();
    await exited;
  }
}
