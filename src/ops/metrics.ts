/*
 * Prometheus metrics. Each app has its own registry (never prom-client's global one), so tests can build several
 * apps in one process and a scrape shows one instance's numbers only.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import type { PassChanges } from '../db/pass-changes.js';
import type { Repositories } from '../db/repositories.js';
import type { Logger } from '../logger.js';
import type { ApnsOutcome } from '../push/apns/response.js';
import { daysLeft, type SigningIdentity } from '../signing/identity.js';

/** The label of requests that matched no route: raw URLs carry identifiers and would make a series each. */
export const unmatchedRoute = '(unmatched)';

export interface MetricsOptions {
  /** Counted on each scrape: passes and registrations, the outbox, the failed pushes. */
  repositories: Pick<Repositories, 'health' | 'outbox'>;
  clock: Clock;
  log: Logger;
  /** The database's pass change feed, whose LISTEN session the metrics show. */
  passChanges?: Pick<PassChanges, 'listening'> | undefined;
  /** The pass type identities, whose certificates' days left the metrics show. */
  identities?:
    | { list(): Array<{ signing: Pick<SigningIdentity, 'passTypeIdentifier' | 'notAfter'> }> }
    | undefined;
  /** A scrape does not wait longer than this for the database (a hung connection must not hang /metrics). */
  databaseTimeoutMs?: number;
}

export interface Metrics {
  readonly registry: Registry;
  /** Fastify's onResponse: the route pattern (never the URL), the method, the status and the seconds taken. */
  observeRequest(route: string, method: string, statusCode: number, seconds: number): void;
  observeSigning(seconds: number): void;
  observeBundleCache(result: 'hit' | 'miss'): void;
  /** The HTTP server closed a connection as it arrived: HTTP_MAX_CONNECTIONS were open. */
  observeDroppedConnection(): void;
  /** The push worker's onOutcome: one call per send. */
  observePush(outcome: ApnsOutcome): void;
  /** Reads the database-backed gauges, then renders every metric in Prometheus' text format. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

/**
 * APNs reasons are single words (`Unregistered`, `TooManyRequests`); our own add details after a colon
 * (`ConnectionError: ECONNRESET`, `send error: …`). Only the part before the colon becomes a label, and anything
 * unexpected becomes `other`, so a label never grows without bound.
 */
export function reasonLabel(reason: string): string {
  const head = reason.split(':')[0]?.trim() ?? '';
  return /^[A-Za-z0-9 ._-]{1,64}$/.test(head) ? head : 'other';
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The request counter and duration histogram, by route pattern, method and status code. */
function registerRequestMetrics(registers: Registry[]): Metrics['observeRequest'] {
  const labelNames = ['route', 'method', 'status_code'] as const;
  const requests = new Counter({
    name: 'passkit_http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status code.',
    labelNames,
    registers,
  });
  const duration = new Histogram({
    name: 'passkit_http_request_duration_seconds',
    help: 'Time from receiving a request to the end of its answer, by route pattern, method and status code.',
    labelNames,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  return (route, method, statusCode, seconds) => {
    const labels = { route, method, status_code: statusCode };
    requests.inc(labels);
    duration.observe(labels, seconds);
  };
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const observeRequest = registerRequestMetrics(registers);
  const signing = new Histogram({
    name: 'passkit_signing_duration_seconds',
    help: 'Time to build and sign one .pkpass bundle.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const bundleCache = new Counter({
    name: 'passkit_bundle_cache_total',
    help: 'Bundle requests answered from the stored bundle of the current version (hit) or signed anew (miss).',
    labelNames: ['result'] as const,
    registers,
  });
  const droppedConnections = new Counter({
    name: 'passkit_http_connections_dropped_total',
    help: 'Connections closed as they arrived because HTTP_MAX_CONNECTIONS were open (idle clients, or too few allowed).',
    registers,
  });
  const pushesSent = new Counter({
    name: 'passkit_pushes_sent_total',
    help: 'Update notifications APNs accepted.',
    registers,
  });
  const pushesFailed = new Counter({
    name: 'passkit_pushes_failed_total',
    help: 'Sends APNs did not accept, by reason and by what follows (retry, unregistered, renew-token, failed).',
    labelNames: ['reason', 'outcome'] as const,
    registers,
  });
  // Both counters start at 0, so rate() works from the first scrape on.
  pushesSent.inc(0);
  for (const result of ['hit', 'miss'] as const) bundleCache.inc({ result }, 0);

  const databaseUp = new Gauge({
    name: 'passkit_database_up',
    help: '1 when the last scrape could read the database, 0 when it could not.',
    registers,
  });
  const passes = new Gauge({ name: 'passkit_passes', help: 'Passes stored.', registers });
  const registrations = new Gauge({
    name: 'passkit_registrations',
    help: 'Registrations of devices for pass updates.',
    registers,
  });
  const outboxDepth = new Gauge({
    name: 'passkit_push_outbox_depth',
    help: 'Pushes waiting in the outbox or in flight.',
    registers,
  });
  const outboxDue = new Gauge({
    name: 'passkit_push_outbox_due',
    help: 'Pushes due now and not held by a worker.',
    registers,
  });
  const outboxClaimed = new Gauge({
    name: 'passkit_push_outbox_claimed',
    help: 'Pushes held by a worker (being sent).',
    registers,
  });
  const outboxOldestDue = new Gauge({
    name: 'passkit_push_outbox_oldest_due_age_seconds',
    help: 'How long the oldest due push has been waiting; 0 when none is due.',
    registers,
  });
  const failuresRecorded = new Gauge({
    name: 'passkit_push_failures_recorded',
    help: 'Pushes given up and recorded in push_failures, by reason (what GET /admin/pushes shows).',
    labelNames: ['reason'] as const,
    registers,
  });
  const { identities } = options;
  if (identities) {
    new Gauge({
      name: 'passkit_signing_certificate_days_left',
      help: 'Whole days until the Pass Type ID certificate expires (negative once it has); renew it from 30 days before.',
      labelNames: ['pass_type_identifier'] as const,
      registers,
      collect() {
        // Reset first: a removed identity's series goes away rather than staying at its last value.
        this.reset();
        const now = options.clock.now();
        for (const { signing } of identities.list()) {
          this.set({ pass_type_identifier: signing.passTypeIdentifier }, daysLeft(signing, now));
        }
      },
    });
  }
  const { passChanges } = options;
  if (passChanges) {
    new Gauge({
      name: 'passkit_pass_changes_listening',
      help: '1 while this instance listens for pass changes; 0 while it cannot, and reads the database on every Wallet request.',
      registers,
      collect() {
        this.set(passChanges.listening ? 1 : 0);
      },
    });
  }
  const databaseGauges = [passes, registrations, outboxDepth, outboxDue, outboxClaimed, outboxOldestDue];

  const timeoutMs = options.databaseTimeoutMs ?? 2_000;

  /** Cheap reads (two counts, the outbox statistics, failures grouped by reason) taken on each scrape. */
  async function readDatabase(): Promise<void> {
    const { repositories, clock } = options;
    const [counts, outbox, failures] = await withTimeout(
      Promise.all([
        repositories.health.counts(),
        repositories.outbox.stats(clock.now()),
        repositories.outbox.failureCounts(),
      ]),
      timeoutMs,
      'metrics database read',
    );
    passes.set(counts.passes);
    registrations.set(counts.registrations);
    outboxDepth.set(outbox.depth);
    outboxDue.set(outbox.due);
    outboxClaimed.set(outbox.claimed);
    outboxOldestDue.set(outbox.oldestDueAgeMs / 1000);
    const byLabel = new Map<string, number>();
    for (const [reason, count] of Object.entries(failures)) {
      const label = reasonLabel(reason);
      byLabel.set(label, (byLabel.get(label) ?? 0) + count);
    }
    failuresRecorded.reset();
    for (const [reason, count] of byLabel) failuresRecorded.set({ reason }, count);
  }

  return {
    registry,
    contentType: registry.contentType,
    observeRequest,
    observeSigning(seconds) {
      signing.observe(seconds);
    },
    observeBundleCache(result) {
      bundleCache.inc({ result });
    },
    observeDroppedConnection() {
      droppedConnections.inc();
    },
    observePush(outcome) {
      if (outcome.kind === 'delivered') pushesSent.inc();
      else pushesFailed.inc({ reason: reasonLabel(outcome.reason), outcome: outcome.kind });
    },
    async scrape() {
      try {
        await readDatabase();
        databaseUp.set(1);
      } catch (error) {
        // Stale numbers would look like a healthy, quiet system: the database's gauges go absent instead.
        databaseUp.set(0);
        for (const gauge of databaseGauges) gauge.remove();
        failuresRecorded.reset();
        options.log.warn({ err: error }, 'metrics: the database could not be read');
      }
      return registry.metrics();
    },
  };
}
