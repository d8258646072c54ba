/**
 * Child process of bench/apns.ts: sends `count` pushes to distinct tokens with one client and reports the wall
 * time. One fresh process per measurement, so no client profits from another's warm-up or leftover sessions.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import apn from '@parse/node-apn';
import { ApnsClient, type ApnsPayload, Notification, Priority, PushType } from 'apns2';
import { pino } from 'pino';
import { createApnsClient } from '../src/push/apns/client.js';
import { backoffDelay } from '../src/push/worker.js';
import { pushTokenFor } from '../test/support/mock-apns.js';
import type { LoadJob, LoadResult } from './apns-protocol.js';

/** The push worker's default in-flight limit (src/push/pushes.ts: APNS_MAX_CONCURRENT_STREAMS, 1000). */
const WORKER_CONCURRENCY = 1000;
const BACKOFF = { baseMs: 10, capMs: 1_000, jitter: true };
const MAX_ATTEMPTS = 50;

function tally(reasons: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const reason of reasons) {
    const key = reason.replace(/streamId: \d+/, 'streamId: N');
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

function describe(error: unknown): string {
  if (typeof error !== 'object' || error === null) return String(error);
  const status = Reflect.get(error, 'status') ?? Reflect.get(error, 'statusCode');
  const reason =
    Reflect.get(error, 'reason') ?? Reflect.get(error, 'response') ?? Reflect.get(error, 'error');
  const text = reason instanceof Error ? reason.message : JSON.stringify(reason);
  return `${status ?? ''} ${text ?? ''}`.trim().slice(0, 80);
}

function tokens(count: number): string[] {
  return Array.from({ length: count }, (_, i) => pushTokenFor(i));
}

/** Our client driven like the push worker: at most 1000 in flight, `retry` outcomes resent after a backoff. */
async function runOurs(job: LoadJob, list: string[]): Promise<LoadResult> {
  const client = createApnsClient({
    origin: job.origin,
    auth: { kind: 'token', keyPem: job.keyPem, keyId: job.keyId, teamId: job.teamId },
    ca: job.caPem,
    log: pino({ level: 'silent' }),
  });
  let next = 0;
  let reportedOk = 0;
  let resends = 0;
  const failed: string[] = [];
  const lane = async (): Promise<void> => {
    for (let i = next++; i < list.length; i = next++) {
      const token = list[i] ?? '';
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const outcome = await client.send(token, job.topic);
        if (outcome.kind === 'delivered') reportedOk++;
        if (outcome.kind !== 'retry' || !job.retry || attempt === MAX_ATTEMPTS) {
          if (outcome.kind !== 'delivered') failed.push(`${outcome.kind} ${outcome.reason}`);
          break;
        }
        resends++;
        await sleep(Math.max(backoffDelay(attempt, BACKOFF), outcome.retryAfterMs ?? 0));
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(WORKER_CONCURRENCY, list.length) }, lane));
  const wallMs = performance.now() - start;
  await client.close();
  return { wallMs, reportedOk, resends, failures: tally(failed) };
}

/** Wallet's notification is exactly `{}`; apns2 always adds `"aps": {}`, which the mock rejects (BadPayload). */
class WalletNotification extends Notification {
  override buildApnsOptions(): ApnsPayload {
    return { aps: {}, toJSON: () => ({}) };
  }
}

/** apns2 as documented (`sendMany`, one call), with its own Pool settings but our origin and CA. */
async function runApns2(job: LoadJob, list: string[]): Promise<LoadResult> {
  const client = new ApnsClient({
    team: job.teamId,
    keyId: job.keyId,
    signingKey: job.keyPem,
    defaultTopic: job.topic,
    host: '127.0.0.1',
  });
  // apns2 builds `https://${host}:443`, so no port can be given: swap its undici Pool (not yet connected) for
  // one of the same class and options (apns2 12.2.0, dist/esm/apns.js) on the mock's origin, trusting its CA.
  const pool = client.client;
  await pool.close();
  Object.defineProperty(client, 'client', {
    value: Reflect.construct(pool.constructor, [
      job.origin,
      {
        connections: 32,
        pipelining: 1,
        allowH2: true,
        maxConcurrentStreams: 100,
        connect: { ca: job.caPem },
      },
    ]),
  });
  const notifications = list.map(
    (token) => new WalletNotification(token, { type: PushType.background, priority: Priority.throttled }),
  );
  const start = performance.now();
  const results = await client.sendMany(notifications);
  const wallMs = performance.now() - start;
  await client.close();
  const failed = results.flatMap((r) => ('error' in r ? [describe(r.error)] : []));
  return { wallMs, reportedOk: results.length - failed.length, resends: 0, failures: tally(failed) };
}

/** @parse/node-apn as documented: one `provider.send(notification, tokens)`. */
async function runNodeApn(job: LoadJob, list: string[]): Promise<LoadResult> {
  const origin = new URL(job.origin);
  const provider = new apn.Provider({
    token: { key: job.keyPem, keyId: job.keyId, teamId: job.teamId },
    production: true,
    address: origin.hostname,
    port: Number(origin.port),
    ca: [job.caPem],
  });
  const note = new apn.Notification();
  note.topic = job.topic;
  note.pushType = 'background';
  note.priority = 5;
  // node-apn compiles this notification to '{}' and then sends no body at all when the body is '{}'
  // (lib/client.js: `if (notification.body !== '{}') request.write(...)`), which APNs answers 400 PayloadEmpty.
  // A Buffer holding '{}' gets past that check, so the mock receives Wallet's `{}`.
  Object.assign(note, { compile: () => Buffer.from('{}') });
  const start = performance.now();
  const result = await provider.send(note, list);
  const wallMs = performance.now() - start;
  await provider.shutdown();
  const failures = tally(result.failed.map(describe));
  return { wallMs, reportedOk: result.sent.length, resends: 0, failures };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as LoadJob;
  const list = tokens(job.count);
  // Our client unrefs its sessions (the server keeps the process alive in production): hold it open here.
  const keepAlive = setInterval(() => {}, 1_000);
  const run = job.client === 'ours' ? runOurs : job.client === 'apns2' ? runApns2 : runNodeApn;
  const result = await run(job, list);
  clearInterval(keepAlive);
  process.send?.(result, () => process.disconnect?.());
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
