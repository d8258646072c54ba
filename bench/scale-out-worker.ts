/**
 * Child process of bench/scale-out.ts: one server instance's push side, built as src/push/pushes.ts builds it
 * (the real push worker + the real APNs client over HTTP/2 + TLS, token auth), on its own connection pool to the
 * shared PostgreSQL database. Messages: parent → `go` (wake: rows were enqueued) and `stop`; child → `ready`.
 */
import pino from 'pino';
import { systemClock } from '../src/clock.js';
import { openDatabase } from '../src/db/database.js';
import { createApnsClient } from '../src/push/apns/client.js';
import { startPushWorker } from '../src/push/worker.js';

export interface ScaleOutWorkerJob {
  databaseUrl: string;
  origin: string;
  caPem: string;
  keyPem: string;
  keyId: string;
  teamId: string;
  /** APNS_MAX_CONCURRENT_STREAMS of the instance (the worker's sends in flight, as in pushes.ts). */
  maxConcurrentStreams: number;
}

export type ToScaleOutWorker = { type: 'go' } | { type: 'stop' };
export type FromScaleOutWorker = { type: 'ready' } | { type: 'stopped'; delivered: number };

const job = JSON.parse(process.argv[2] ?? '{}') as ScaleOutWorkerJob;
const log = pino({ level: 'warn' }, pino.destination(2));
const database = await openDatabase({ databaseUrl: job.databaseUrl, dataDir: '', log });
const client = createApnsClient({
  origin: job.origin,
  ca: job.caPem,
  auth: { kind: 'token', keyPem: job.keyPem, keyId: job.keyId, teamId: job.teamId },
  maxConcurrentStreams: job.maxConcurrentStreams,
  log,
});
/** Pushes this instance got a 200 for: shows how the shared outbox split the work. */
let delivered = 0;
const worker = startPushWorker({
  repositories: database.repositories,
  send: (pushToken, topic) => client.send(pushToken, topic),
  clock: systemClock,
  log,
  concurrency: job.maxConcurrentStreams,
  onOutcome: (outcome) => {
    if (outcome.kind === 'delivered') delivered += 1;
  },
});

function reply(message: FromScaleOutWorker): void {
  process.send?.(message);
}

process.on('message', (message: ToScaleOutWorker) => {
  if (message.type === 'go') {
    worker.wake();
    return;
  }
  void (async () => {
    await worker.stop();
    await client.close();
    await database.close();
    reply({ type: 'stopped', delivered });
    process.disconnect();
  })();
});
reply({ type: 'ready' });
