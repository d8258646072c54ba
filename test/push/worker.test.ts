import { generateKeyPairSync } from 'node:crypto';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database, PrismaClient } from '../../src/db/database.js';
import { createRepositories } from '../../src/db/repositories.js';
import { createApnsClient } from '../../src/push/apns/client.js';
import type { ApnsOutcome } from '../../src/push/apns/response.js';
import {
  backoffDelay,
  type PushWorker,
  type PushWorkerOptions,
  startPushWorker,
} from '../../src/push/worker.js';
import { openTestDatabase } from '../support/database.js';
import { startMockApns } from '../support/mock-apns.js';
import { emptyPushTables, manualClock, outboxRows, passType, passWithDevices } from './outbox-fixtures.js';

let database: Database;
let worker: PushWorker | undefined;
let logLines: string[];

beforeAll(async () => {
  database = await openTestDatabase();
});

afterAll(async () => {
  await database?.close();
});

beforeEach(async () => {
  logLines = [];
  await emptyPushTables(database.prisma);
});

afterEach(async () => {
  await worker?.stop();
  worker = undefined;
});

type Send = (pushToken: string, topic: string) => Promise<ApnsOutcome>;

function start(send: Send, clock: ReturnType<typeof manualClock>, options: Partial<PushWorkerOptions> = {}) {
  const log = pino({ level: 'debug' }, { write: (line: string) => logLines.push(line) });
  worker = startPushWorker({
    repositories: database.repositories,
    send,
    clock,
    log,
    pollIntervalMs: 20,
    ...options,
  });
  return worker;
}

/** The APNs boundary answering every push with `outcome`, recording what was sent. */
function answering(outcome: ApnsOutcome) {
  const sent: Array<{ pushToken: string; topic: string }> = [];
  const send: Send = async (pushToken, topic) => {
    sent.push({ pushToken, topic });
    return outcome;
  };
  return { sent, send };
}

/** The database handle with one method failing once, as when PostgreSQL restarts between the send and the write. */
function failingOnce(prisma: PrismaClient, method: '$executeRaw'): PrismaClient {
  let failed = false;
  return new Proxy(prisma, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (key !== method || typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (failed) return Reflect.apply(value, target, args);
        failed = true;
        return Promise.reject(new Error('terminating connection due to administrator command'));
      };
    },
  });
}

describe('backoffDelay', () => {
  it('doubles from the base up to the cap, and full jitter draws in [0, delay)', () => {
    const backoff = { baseMs: 1_000, capMs: 5_000, jitter: false };
    expect([1, 2, 3, 4, 5].map((attempt) => backoffDelay(attempt, backoff))).toEqual([
      1_000, 2_000, 4_000, 5_000, 5_000,
    ]);
    expect(backoffDelay(3, { ...backoff, jitter: true }, () => 0.5)).toBe(2_000);
    expect(backoffDelay(3, { ...backoff, jitter: true }, () => 0)).toBe(0);
  });
});

describe('the push worker', () => {
  it('sends one push per token with the pass type identifier as topic, then deletes the rows', async () => {
    const clock = manualClock();
    const { pushTokens } = await passWithDevices(database, { count: 5, now: clock.now() });
    const apns = answering({ kind: 'delivered' });
    const pushWorker = start(apns.send, clock);
    pushWorker.wake();
    await pushWorker.drain();
    expect(apns.sent.map((push) => push.pushToken).sort()).toEqual([...pushTokens].sort());
    expect(new Set(apns.sent.map((push) => push.topic))).toEqual(new Set([passType]));
    expect(await outboxRows(database.prisma)).toEqual([]);
    // Push tokens are secrets: the logs name a short hash only.
    expect(logLines.length).toBeGreaterThan(0);
    for (const token of pushTokens) expect(logLines.join('\n')).not.toContain(token);
  });

  it('retries with exponential backoff, then records the failure with its reason after maxAttempts', async () => {
    const clock = manualClock();
    await passWithDevices(database, { count: 1, now: clock.now() });
    const apns = answering({ kind: 'retry', reason: 'ServiceUnavailable' });
    const backoff = { baseMs: 1_000, capMs: 60_000, jitter: false };
    const pushWorker = start(apns.send, clock, { maxAttempts: 3, backoff });

    await pushWorker.drain();
    expect(apns.sent).toHaveLength(1);
    let [row] = await outboxRows(database.prisma);
    expect(row).toMatchObject({ attempts: 1, claimed_until: null, last_error: 'ServiceUnavailable' });
    expect(row?.due_at.getTime()).toBe(clock.now().getTime() + 1_000);

    clock.advance(1_000);
    await pushWorker.drain();
    expect(apns.sent).toHaveLength(2);
    [row] = await outboxRows(database.prisma);
    expect(row?.due_at.getTime()).toBe(clock.now().getTime() + 2_000);

    clock.advance(2_000);
    await pushWorker.drain();
    expect(apns.sent).toHaveLength(3);
    expect(await outboxRows(database.prisma)).toEqual([]);
    expect(await database.repositories.outbox.failureCounts()).toEqual({ ServiceUnavailable: 1 });
  });

  it('waits at least as long as APNs asked (retryAfterMs), and treats renew-token as a retry', async () => {
    const clock = manualClock();
    await passWithDevices(database, { count: 1, now: clock.now() });
    const answers: ApnsOutcome[] = [
      { kind: 'retry', reason: 'TooManyRequests', retryAfterMs: 60_000 },
      { kind: 'renew-token', reason: 'ExpiredProviderToken' },
      { kind: 'delivered' },
    ];
    const pushWorker = start(async () => answers.shift() ?? { kind: 'delivered' }, clock, {
      backoff: { baseMs: 1_000, jitter: false },
    });
    await pushWorker.drain();
    expect((await outboxRows(database.prisma))[0]?.due_at.getTime()).toBe(clock.now().getTime() + 60_000);
    clock.advance(60_000);
    await pushWorker.drain();
    expect(await outboxRows(database.prisma)).toEqual([
      expect.objectContaining({ attempts: 2, last_error: 'ExpiredProviderToken' }),
    ]);
    clock.advance(2_000);
    await pushWorker.drain();
    expect(await outboxRows(database.prisma)).toEqual([]);
    expect(answers).toEqual([]);
  });

  it('records a push APNs refused for good at once', async () => {
    const clock = manualClock();
    await passWithDevices(database, { count: 2, now: clock.now() });
    const pushWorker = start(answering({ kind: 'failed', reason: 'TopicDisallowed' }).send, clock);
    await pushWorker.drain();
    expect(await outboxRows(database.prisma)).toEqual([]);
    expect(await database.repositories.outbox.failureCounts()).toEqual({ TopicDisallowed: 2 });
  });

  it('on 410 Unregistered removes the registrations older than APNs’s timestamp', async () => {
    const clock = manualClock();
    const { passId } = await passWithDevices(database, { count: 2, now: clock.now() });
    const unregisteredAt = new Date(clock.now().getTime() + 1);
    const pushWorker = start(
      answering({ kind: 'unregistered', reason: 'Unregistered', unregisteredAt }).send,
      clock,
    );
    await pushWorker.drain();
    expect(await outboxRows(database.prisma)).toEqual([]);
    expect(await database.prisma.registration.count({ where: { passId } })).toBe(0);
    expect(await database.prisma.device.count()).toBe(0);
  });

  it('sends again for a change made while the push for that token was in flight', async () => {
    const clock = manualClock();
    const { passId } = await passWithDevices(database, { count: 1, now: clock.now() });
    let sends = 0;
    const pushWorker = start(async () => {
      sends += 1;
      // The change commits while APNs is being asked: the device may already have fetched before it.
      if (sends === 1) await database.repositories.outbox.enqueue(passId, passType, clock.now());
      return { kind: 'delivered' };
    }, clock);
    await pushWorker.drain();
    expect(sends).toBe(2);
    expect(await outboxRows(database.prisma)).toEqual([]);
  });

  it('stop() stops claiming, waits for sends in flight (bounded), and gives back the rows still held', async () => {
    const clock = manualClock();
    await passWithDevices(database, { count: 3, now: clock.now() });
    let started = 0;
    let finish: (() => void) | undefined;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const pushWorker = start(
      async () => {
        started += 1;
        await finished;
        return { kind: 'delivered' };
      },
      clock,
      { stopTimeoutMs: 100 },
    );
    await expect.poll(() => started).toBe(3);
    await pushWorker.stop();
    const rows = await outboxRows(database.prisma);
    expect(rows.map((row) => row.claimed_until)).toEqual([null, null, null]);
    // A send finishing after its row was given back leaves the row alone: another instance sends it.
    finish?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await outboxRows(database.prisma)).toHaveLength(3);
  });

  it('stop() also gives back the rows claimed ahead of the sends and not sent yet', async () => {
    const clock = manualClock();
    await passWithDevices(database, { count: 4, now: clock.now() });
    let started = 0;
    const pushWorker = start(
      async () => {
        started += 1;
        return new Promise<ApnsOutcome>(() => {});
      },
      clock,
      { concurrency: 2, stopTimeoutMs: 50 },
    );
    pushWorker.wake();
    // Two sends out, two more rows claimed ahead, waiting for a slot.
    await expect
      .poll(async () => (await outboxRows(database.prisma)).filter((row) => row.claimed_until).length)
      .toBe(4);
    await pushWorker.stop();
    expect(started).toBe(2);
    expect((await outboxRows(database.prisma)).map((row) => row.claimed_until)).toEqual([
      null,
      null,
      null,
      null,
    ]);
  });

  it('loses no push when storing the outcome fails: the row is sent again after its lease', async () => {
    const clock = manualClock();
    await passWithDevices(database, { count: 1, now: clock.now() });
    const apns = answering({ kind: 'delivered' });
    const pushWorker = start(apns.send, clock, {
      repositories: createRepositories({ ...database, prisma: failingOnce(database.prisma, '$executeRaw') }),
      leaseMs: 30_000,
    });
    await pushWorker.drain();
    expect(apns.sent).toHaveLength(1);
    expect((await outboxRows(database.prisma))[0]?.claimed_until).not.toBeNull();
    clock.advance(30_001);
    await pushWorker.drain();
    expect(apns.sent).toHaveLength(2);
    expect(await outboxRows(database.prisma)).toEqual([]);
  });

  it('batched completion leaves alone a row whose lease ran out and that another instance claimed', async () => {
    const clock = manualClock();
    await passWithDevices(database, { count: 3, now: clock.now() });
    let finishSlowSend: () => void = () => {};
    const slowSend = new Promise<void>((resolve) => {
      finishSlowSend = resolve;
    });
    let sends = 0;
    const pushWorker = start(
      async () => {
        sends += 1;
        if (sends === 1) await slowSend;
        return { kind: 'delivered' };
      },
      clock,
      { leaseMs: 30_000, pollIntervalMs: 60_000, completeBatchSize: 2, completeDelayMs: 1 },
    );
    pushWorker.wake();
    // The two quick deliveries are deleted together; the slow one is still out.
    await expect.poll(async () => (await outboxRows(database.prisma)).length).toBe(1);
    clock.advance(30_001);
    const [other] = await database.repositories.outbox.claimDue({
      limit: 10,
      leaseMs: 30_000,
      now: clock.now(),
    });
    expect(other).toBeDefined();
    finishSlowSend();
    await pushWorker.drain();
    // The late "delivered" must not delete the row: the other instance holds it and is sending it.
    expect(await outboxRows(database.prisma)).toEqual([
      expect.objectContaining({ id: other?.id, claimed_until: other?.claimedUntil }),
    ]);
    expect(sends).toBe(3);
  });

  it('sends each row once with many in flight and a small batch', async () => {
    const clock = manualClock();
    await passWithDevices(database, { count: 60, now: clock.now() });
    const apns = answering({ kind: 'delivered' });
    const pushWorker = start(apns.send, clock, { concurrency: 16, batchSize: 5 });
    await pushWorker.drain();
    expect(apns.sent).toHaveLength(60);
    expect(new Set(apns.sent.map((push) => push.pushToken)).size).toBe(60);
  });

  it('keeps going with one send in flight at a time', async () => {
    const clock = manualClock();
    await passWithDevices(database, { count: 5, now: clock.now() });
    const apns = answering({ kind: 'delivered' });
    const pushWorker = start(apns.send, clock, { concurrency: 1, pollIntervalMs: 60_000 });
    pushWorker.wake();
    // No drain(): it wakes the worker itself. A finished send must start the next claim.
    await expect.poll(() => apns.sent.length, { timeout: 2_000 }).toBe(5);
    await pushWorker.drain();
    expect(apns.sent).toHaveLength(5);
  });
});

describe('the push worker with the APNs client against the mock APNs (HTTP/2 over TLS)', () => {
  it('delivers one `{}` push per registered token, with the pass type identifier as topic', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const mock = await startMockApns({ keyId: 'KEY1234567', teamId: 'TEAM123456', publicKeyPem });
    const apns = createApnsClient({
      origin: mock.origin,
      ca: mock.caPem,
      auth: { kind: 'token', keyPem, keyId: 'KEY1234567', teamId: 'TEAM123456' },
      log: pino({ level: 'silent' }),
    });
    try {
      const clock = manualClock(new Date());
      const { pushTokens } = await passWithDevices(database, {
        serialNumber: 'e2e',
        count: 20,
        now: clock.now(),
      });
      const pushWorker = start((pushToken, topic) => apns.send(pushToken, topic), clock);
      pushWorker.wake();
      await pushWorker.drain();
      const accepted = mock.accepted();
      expect(accepted).toHaveLength(20);
      expect(accepted.map((push) => push.pushToken).sort()).toEqual([...pushTokens].sort());
      for (const push of accepted) {
        expect(push.body).toBe('{}');
        expect(push.topic).toBe(passType);
      }
      expect(await outboxRows(database.prisma)).toEqual([]);
    } finally {
      await worker?.stop();
      await apns.close();
      await mock.close();
    }
  });
});
