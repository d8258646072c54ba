/*
 * The push worker: claims due outbox rows, sends Wallet's update notification for each, and stores what APNs
 * answered. Every server instance runs one; the outbox's SKIP LOCKED claims share the work between them.
 * Delivery is at least once: a row is deleted only after APNs accepted the push (an extra empty push is
 * harmless, since Wallet then only asks which passes changed).
 */
import type { Clock } from '../clock.js';
import type { ClaimedPush, OutboxRepository } from '../db/outbox.js';
import type { Repositories } from '../db/repositories.js';
import { fingerprint, type Logger } from '../logger.js';
import type { ApnsOutcome } from './apns/response.js';

/** The APNs boundary: sends `{}` to one push token with the pass type identifier as topic. Never rejects. */
export type SendPush = (pushToken: string, topic: string) => Promise<ApnsOutcome>;

export interface BackoffOptions {
  /** Delay before the first retry, before jitter. */
  baseMs: number;
  /** The delay never grows beyond this. */
  capMs: number;
  /** Full jitter (a uniform delay in [0, exponential delay)): instances that failed together retry apart. */
  jitter: boolean;
}

export interface PushWorkerOptions {
  /** The outbox it works through, and the registrations it removes when APNs says a token is gone. */
  repositories: Pick<Repositories, 'outbox' | 'registrations'>;
  send: SendPush;
  clock: Clock;
  log: Logger;
  /** Sends in flight at most (APNs multiplexes them over HTTP/2 streams). */
  concurrency?: number;
  /** Rows claimed per query (at most the free send slots). */
  batchSize?: number;
  /** Delivered rows deleted per statement at most; a fuller batch is written at once. */
  completeBatchSize?: number;
  /** How long a delivered row waits for others to share its delete statement. */
  completeDelayMs?: number;
  /** How often to look for due rows when not woken (retries, other instances' rows, lost leases). */
  pollIntervalMs?: number;
  /** How long a claim holds; a row whose worker died is sent again after this. Longer than a send can take. */
  leaseMs?: number;
  /** Sends of one row before it is recorded as failed. */
  maxAttempts?: number;
  backoff?: Partial<BackoffOptions>;
  /** How long stop() waits for sends in flight before giving their rows back. */
  stopTimeoutMs?: number;
  /** [0, 1); for tests of the jitter. */
  random?: () => number;
  /** Told what APNs answered each send (metrics count pushes sent and failed by reason). */
  onOutcome?: (outcome: ApnsOutcome) => void;
}

export interface PushWorker {
  /** A change committed: look for due rows now instead of at the next poll. */
  wake(): void;
  /** For tests: resolves when no row is due and no send is in flight. */
  drain(): Promise<void>;
  /** SIGTERM: stop claiming, let sends in flight finish (bounded), give back the rows still held. */
  stop(): Promise<void>;
  /** False once stop() began or the claim loop ended: readiness names the push worker then. */
  readonly running: boolean;
}

const defaultBackoff: BackoffOptions = { baseMs: 1_000, capMs: 10 * 60_000, jitter: true };

/**
 * The delay before retry number `attempt` (1-based): exponential, capped, with full jitter. Apple asks to retry
 * 429 TooManyRequests, 500 and 503 "with a delay", and to back off rather than hammer a shutting-down server.
 */
export function backoffDelay(attempt: number, backoff: BackoffOptions, random: () => number = Math.random) {
  const exponential = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.max(0, attempt - 1));
  return backoff.jitter ? Math.floor(random() * exponential) : exponential;
}

/** Wakes one waiter early; a notification with nobody waiting is kept for the next wait. */
class Signal {
  #pending = false;
  #wake: (() => void) | undefined;

  notify(): void {
    if (this.#wake) this.#wake();
    else this.#pending = true;
  }

  wait(ms: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }
}

/**
 * Deletes delivered rows in batches instead of one statement per push, which capped a fan-out at the database's
 * per-statement round trips (~3.5k pushes/s). One delete runs at a time: rows delivered meanwhile go into the next
 * one as soon as it ends (group commit), so a slower database gets bigger batches rather than a queue of
 * statements. A lone delivery waits at most `delayMs` for company. Each row keeps its own lease check
 * (OutboxRepository.completeMany); a failed statement leaves its rows claimed, sent again after their lease.
 */
class CompletionBatcher {
  #queue: Array<{ push: ClaimedPush; done: () => void }> = [];
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;

  constructor(
    private readonly outbox: OutboxRepository,
    private readonly log: Logger,
    private readonly maxBatch: number,
    private readonly delayMs: number,
  ) {}

  /** Resolves once the row's delete was written (or failed and was logged): never rejects. */
  complete(push: ClaimedPush): Promise<void> {
    return new Promise((done) => {
      this.#queue.push({ push, done });
      // A write in progress takes the queue when it ends.
      if (this.#writing) return;
      if (this.#queue.length >= this.maxBatch) this.#start();
      else this.#timer ??= setTimeout(() => this.#start(), this.delayMs);
    });
  }

  /** Writes everything queued now (stop(): before the database closes). */
  async flush(): Promise<void> {
    while (this.#writing || this.#queue.length > 0) {
      this.#start();
      await this.#writing;
    }
  }

  #start(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#writing || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, this.maxBatch);
    this.#writing = this.#write(batch).finally(() => {
      this.#writing = undefined;
      this.#start();
    });
  }

  async #write(batch: Array<{ push: ClaimedPush; done: () => void }>): Promise<void> {
    try {
      const deleted = await this.outbox.completeMany(batch.map((entry) => entry.push));
      if (deleted < batch.length)
        this.log.debug(
          { rows: batch.length, deleted },
          'push outbox: some leases were lost before completion',
        );
    } catch (error) {
      // The rows stay claimed: when their lease runs out they are due again and sent again (at least once).
      this.log.warn(
        { rows: batch.length, err: describe(error) },
        'push outbox: storing delivered pushes failed; they are sent again after their lease',
      );
    } finally {
      for (const entry of batch) entry.done();
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function startPushWorker(options: PushWorkerOptions): PushWorker {
  const worker = new Worker(options);
  return {
    wake: () => worker.wake(),
    drain: () => worker.drain(),
    stop: () => worker.stop(),
    get running() {
      return worker.running;
    },
  };
}

type ResolvedOptions = Required<Omit<PushWorkerOptions, 'backoff' | 'onOutcome'>> &
  Pick<PushWorkerOptions, 'onOutcome'> & { backoff: BackoffOptions };

class Worker {
  readonly #o: ResolvedOptions;
  readonly #signal = new Signal();
  /** Rows claimed and waiting for a send slot: one batch claimed ahead, so slots never wait for a claim. */
  #ready: ClaimedPush[] = [];
  /** The next row of #ready to send: a slot frees per finished send, and shifting the array each time costs O(n). */
  #readyHead = 0;
  /** Rows whose send is in flight: `concurrency` bounds these. */
  readonly #sending = new Set<ClaimedPush>();
  /** Every row being sent or having its outcome stored, with the promise of its end. */
  readonly #held = new Map<ClaimedPush, Promise<void>>();
  /** Rows stop() gave back while their send was still running: their result must not touch the row. */
  readonly #released = new Set<ClaimedPush>();
  readonly #completions: CompletionBatcher;
  #stopping = false;
  #claiming = false;
  #claimRounds = 0;
  readonly #loop: Promise<void>;
  #stopped: Promise<void> | undefined;
  #loopEnded = false;

  constructor(options: PushWorkerOptions) {
    this.#o = {
      concurrency: 1000,
      batchSize: 1000,
      completeBatchSize: 1000,
      completeDelayMs: 5,
      pollIntervalMs: 1_000,
      leaseMs: 60_000,
      maxAttempts: 10,
      stopTimeoutMs: 10_000,
      random: Math.random,
      ...options,
      backoff: { ...defaultBackoff, ...options.backoff },
    };
    this.#completions = new CompletionBatcher(
      this.#o.repositories.outbox,
      this.#o.log,
      Math.max(1, this.#o.completeBatchSize),
      this.#o.completeDelayMs,
    );
    this.#loop = this.#run().finally(() => {
      this.#loopEnded = true;
    });
  }

  get running(): boolean {
    return !this.#stopping && !this.#loopEnded;
  }

  wake(): void {
    if (!this.#stopping) this.#signal.notify();
  }

  /**
   * Rows that may be claimed now. The worker keeps up to one batch (at most `concurrency`) claimed ahead of the
   * sends, so a finished send starts the next one at once instead of waiting for a claim's round trip. A send slot
   * frees as soon as APNs answers, before the outcome is stored, so the HTTP/2 streams stay busy while the database
   * catches up; rows waiting for their write are bounded too (4 × `concurrency`), so a database that cannot keep up
   * slows claiming instead of piling up leases.
   */
  #capacity(): number {
    const { concurrency, batchSize } = this.#o;
    const ahead = Math.min(batchSize, concurrency);
    const pipeline = this.#sending.size + this.#readyCount();
    const settlingRoom = 4 * concurrency - this.#settling();
    return Math.min(concurrency + ahead - pipeline, settlingRoom);
  }

  /** Rows whose send finished and whose outcome is being stored. */
  #settling(): number {
    return this.#held.size - this.#sending.size;
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      const capacity = this.#capacity();
      if (capacity <= 0) {
        await this.#signal.wait(this.#o.pollIntervalMs);
        continue;
      }
      const limit = Math.min(this.#o.batchSize, capacity);
      const claimed = await this.#claim(limit);
      for (const push of claimed) this.#ready.push(push);
      this.#dispatch();
      // A full batch means more may be due: claim again at once.
      if (claimed.length < limit) await this.#signal.wait(this.#o.pollIntervalMs);
    }
  }

  async #claim(limit: number): Promise<ClaimedPush[]> {
    this.#claiming = true;
    this.#claimRounds += 1;
    try {
      const { repositories, leaseMs, clock } = this.#o;
      return await repositories.outbox.claimDue({ limit, leaseMs, now: clock.now() });
    } catch (error) {
      this.#o.log.warn(
        { err: describe(error) },
        'push outbox: claiming failed; trying again at the next poll',
      );
      return [];
    } finally {
      this.#claiming = false;
    }
  }

  /** Starts sends for claimed rows while slots are free (not after stop() began: those rows are given back). */
  #dispatch(): void {
    while (!this.#stopping && this.#sending.size < this.#o.concurrency && this.#readyCount() > 0) {
      const push = this.#ready[this.#readyHead] as ClaimedPush;
      this.#readyHead += 1;
      this.#sending.add(push);
      const done = this.#handle(push).finally(() => {
        this.#held.delete(push);
        this.#released.delete(push);
        this.#freed();
      });
      this.#held.set(push, done);
    }
    if (this.#readyHead > 0 && this.#readyHead * 2 >= this.#ready.length) {
      this.#ready = this.#ready.slice(this.#readyHead);
      this.#readyHead = 0;
    }
  }

  #readyCount(): number {
    return this.#ready.length - this.#readyHead;
  }

  /** Claim again once a good part of a batch is free, not once per finished send. */
  #freed(): void {
    const worthClaiming = Math.min(Math.ceil(this.#o.batchSize / 2), this.#o.concurrency);
    if (this.#capacity() >= worthClaiming) this.#signal.notify();
  }

  async #handle(push: ClaimedPush): Promise<void> {
    const sentAt = this.#o.clock.now();
    const outcome = await this.#send(push);
    this.#sending.delete(push);
    this.#dispatch();
    this.#freed();
    this.#o.onOutcome?.(outcome);
    if (this.#released.has(push)) return;
    try {
      await this.#apply(push, outcome, sentAt);
    } catch (error) {
      // The row stays claimed: when the lease runs out it is due again and sent again (at least once).
      this.#o.log.warn(
        { push: fingerprint(push.pushToken), outcome: outcome.kind, err: describe(error) },
        'push outbox: storing the outcome failed; the push is sent again after its lease',
      );
    }
  }

  async #send(push: ClaimedPush): Promise<ApnsOutcome> {
    try {
      // Apple: the topic of a pass's update notification is its pass type identifier.
      return await this.#o.send(push.pushToken, push.passTypeIdentifier);
    } catch (error) {
      return { kind: 'retry', reason: `send error: ${describe(error)}` };
    }
  }

  async #apply(push: ClaimedPush, outcome: ApnsOutcome, sentAt: Date): Promise<void> {
    switch (outcome.kind) {
      case 'delivered':
        await this.#completions.complete(push);
        this.#logOutcome('debug', push, 'delivered');
        return;
      case 'unregistered':
        return this.#unregister(push, outcome.reason, outcome.unregisteredAt ?? sentAt);
      case 'retry':
        return this.#retryOrGiveUp(push, outcome.reason, outcome.retryAfterMs);
      case 'renew-token':
        // The client already renewed the provider token and resent once: try again later.
        return this.#retryOrGiveUp(push, outcome.reason, undefined);
      case 'failed':
        return this.#giveUp(push, outcome.reason, push.attempts + 1);
    }
  }

  /**
   * Apple: stop sending to a token APNs reports as no longer active for the topic (410), and Wallet's guide
   * removes the registrations. Without APNs's timestamp (400 BadDeviceToken), the time of the send stands in.
   */
  async #unregister(push: ClaimedPush, reason: string, unregisteredAt: Date): Promise<void> {
    const removed = await this.#o.repositories.registrations.removeUnregisteredToken(
      push.pushToken,
      push.passTypeIdentifier,
      unregisteredAt,
    );
    await this.#completions.complete(push);
    this.#logOutcome('info', push, 'unregistered', { reason, removed });
  }

  async #retryOrGiveUp(push: ClaimedPush, reason: string, retryAfterMs: number | undefined): Promise<void> {
    const attempts = push.attempts + 1;
    if (attempts >= this.#o.maxAttempts) return this.#giveUp(push, reason, attempts);
    const delayMs = Math.max(backoffDelay(attempts, this.#o.backoff, this.#o.random), retryAfterMs ?? 0);
    const dueAt = new Date(this.#o.clock.now().getTime() + delayMs);
    await this.#o.repositories.outbox.scheduleRetry(push, { attempts, dueAt, reason });
    this.#logOutcome('warn', push, 'retry', { reason, attempts, delayMs });
  }

  async #giveUp(push: ClaimedPush, reason: string, attempts: number): Promise<void> {
    const failedAt = this.#o.clock.now();
    await this.#o.repositories.outbox.recordFailure(push, { reason, attempts, failedAt });
    this.#logOutcome('error', push, 'failed', { reason, attempts });
  }

  #logOutcome(level: 'debug' | 'info' | 'warn' | 'error', push: ClaimedPush, outcome: string, extra = {}) {
    // A fan-out logs 100,000 deliveries at debug: skip hashing the token for a line nobody keeps.
    if (!this.#o.log.isLevelEnabled(level)) return;
    // Push tokens are the device's secret: logs carry a short hash only.
    const fields = {
      push: fingerprint(push.pushToken),
      passTypeIdentifier: push.passTypeIdentifier,
      outcome,
    };
    this.#o.log[level]({ ...fields, ...extra }, `push ${outcome}`);
  }

  async drain(): Promise<void> {
    while (!this.#stopping) {
      await Promise.allSettled([...this.#held.values()]);
      const rounds = this.#claimRounds;
      if (this.#idle()) {
        const { due } = await this.#o.repositories.outbox.stats(this.#o.clock.now());
        const quiet = this.#idle() && rounds === this.#claimRounds;
        if (due === 0 && quiet) return;
      }
      this.wake();
      await sleep(5);
    }
  }

  #idle(): boolean {
    return this.#held.size === 0 && this.#readyCount() === 0 && !this.#claiming;
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #shutdown(): Promise<void> {
    this.#stopping = true;
    this.#signal.notify();
    await this.#loop;
    // Claimed ahead but not sent: given back at once, with the sends that do not finish in time.
    const notSent = this.#ready.slice(this.#readyHead);
    this.#ready = [];
    this.#readyHead = 0;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#o.stopTimeoutMs);
    });
    await Promise.race([Promise.allSettled([...this.#held.values()]), timeout]);
    clearTimeout(timer);
    await this.#releaseUnfinished(notSent);
    // Delivered rows waiting for their batch are written now, before the database closes.
    await this.#completions.flush();
  }

  /** Rows whose send did not finish in time go back to the queue, due now, for this or another instance. */
  async #releaseUnfinished(notSent: ClaimedPush[]): Promise<void> {
    const unfinished = [...notSent, ...this.#sending];
    if (unfinished.length === 0) return;
    for (const push of unfinished) this.#released.add(push);
    try {
      await this.#o.repositories.outbox.releaseAll(unfinished, this.#o.clock.now());
      this.#o.log.info({ released: unfinished.length }, 'push worker stopped; unfinished pushes given back');
    } catch (error) {
      this.#o.log.warn({ err: describe(error) }, 'push worker: releasing failed; the leases will run out');
    }
  }
}
