/*
 * The push outbox in PostgreSQL. A change writes one row per push token and pass type in its own transaction
 * (enqueue, through Repositories.inTransaction); workers on any number of server instances claim due rows here, send, and then
 * complete, retry or give up on them. A claim is a lease: a row claimed by a process that died becomes due again
 * when the lease runs out, so every push goes out at least once.
 *
 * Every follow-up of a claim (complete, retry, failure, release) matches the row's claimed_until as well as its
 * id: it acts only while the lease it was given still holds. A worker whose lease ran out (another worker
 * reclaimed and is sending) or whose row was released cannot delete a row that a later change coalesced into.
 */
import { createHash } from 'node:crypto';
import type { PrismaClient, SqlQuery } from './sql.js';
import { isUniqueViolation } from './unique-violation.js';

/** A row claimed by a worker, with the lease that proves the claim. */
export interface ClaimedPush {
  id: bigint;
  pushToken: string;
  passTypeIdentifier: string;
  /** Sends made before this claim. */
  attempts: number;
  enqueuedAt: Date;
  dueAt: Date;
  claimedUntil: Date;
}

export interface ClaimOptions {
  limit: number;
  leaseMs: number;
  now: Date;
}

interface ClaimedRow {
  id: bigint;
  push_token: string;
  pass_type_identifier: string;
  attempts: number;
  enqueued_at: Date;
  due_at: Date;
  claimed_until: Date;
}

/**
 * Claims up to `limit` due rows, oldest due first. FOR UPDATE SKIP LOCKED lets several instances claim at once
 * without waiting for each other and without claiming a row twice; a row whose lease ran out counts as due.
 * The order is due_at alone, the order of its index: rows of one change share a due_at, and `ORDER BY due_at, id`
 * made PostgreSQL sort the whole tie group (100,000 rows for a 100k fan-out: ~30 ms per claim) every time.
 */
async function claimDuePushes(prisma: PrismaClient, options: ClaimOptions): Promise<ClaimedPush[]> {
  const { limit, now } = options;
  const claimedUntil = new Date(now.getTime() + options.leaseMs);
  const rows = await prisma.$queryRaw<ClaimedRow[]>`
    UPDATE push_outbox SET claimed_until = ${claimedUntil}::timestamptz
    WHERE id IN (
      SELECT id FROM push_outbox
      WHERE due_at <= ${now}::timestamptz AND (claimed_until IS NULL OR claimed_until < ${now}::timestamptz)
      ORDER BY due_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)
    RETURNING id, push_token, pass_type_identifier, attempts, enqueued_at, due_at, claimed_until`;
  return rows.map((row) => ({
    id: row.id,
    pushToken: row.push_token,
    passTypeIdentifier: row.pass_type_identifier,
    attempts: row.attempts,
    enqueuedAt: row.enqueued_at,
    dueAt: row.due_at,
    claimedUntil: row.claimed_until,
  }));
}

type Claim = Pick<ClaimedPush, 'id' | 'claimedUntil'>;

/** The push went out (or is pointless now): the row is done. False when the lease was lost meanwhile. */
async function completePush(prisma: PrismaClient, claim: Claim): Promise<boolean> {
  const count = await prisma.$executeRaw`
    DELETE FROM push_outbox WHERE id = ${claim.id} AND claimed_until = ${claim.claimedUntil}::timestamptz`;
  return count > 0;
}

/**
 * completePush for many rows in one statement (the worker collects what APNs accepted for a few milliseconds):
 * each row is deleted only while it still holds the lease it was claimed with, exactly as completePush checks it
 * row by row. Returns how many rows were deleted; the others had lost their lease (another worker has them, or a
 * stop gave them back) and are left alone. The leases travel as ISO text: timestamptz(3) holds what a Date does.
 * The id range makes it an index range scan: joined with unnest alone (or with `id = ANY(…)`), PostgreSQL's cost
 * model preferred hashing the whole outbox per batch (12 ms at 100k rows, against 1 ms). A batch's rows were claimed
 * together, in index order, so their ids are close; a scattered batch scans at most what the hash join did.
 */
async function completePushes(prisma: PrismaClient, claims: readonly Claim[]): Promise<number> {
  if (claims.length === 0) return 0;
  const ids = claims.map((claim) => claim.id);
  const leases = claims.map((claim) => claim.claimedUntil.toISOString());
  let low = ids[0] ?? 0n;
  let high = low;
  for (const id of ids) {
    if (id < low) low = id;
    if (id > high) high = id;
  }
  return prisma.$executeRaw`
    DELETE FROM push_outbox o
    USING unnest(${ids}::bigint[], ${leases}::timestamptz[]) AS c(id, claimed_until)
    WHERE o.id BETWEEN ${low}::bigint AND ${high}::bigint AND o.id = c.id AND o.claimed_until = c.claimed_until`;
}

export interface Release {
  attempts: number;
  dueAt: Date;
  lastError?: string | undefined;
}

/**
 * Gives the row back to the queue (claimed_until = NULL), due at `dueAt`. When a change arrived while the row was
 * claimed, there is already an unclaimed row for the token and pass type (due at once): that row carries the push,
 * and this one is deleted, since the unique index allows one unclaimed row per token and pass type.
 */
async function releasePush(prisma: PrismaClient, claim: Claim, release: Release): Promise<void> {
  try {
    const count = await prisma.$executeRaw`
      UPDATE push_outbox o SET
        claimed_until = NULL,
        attempts = ${release.attempts},
        due_at = ${release.dueAt}::timestamptz,
        last_error = ${release.lastError ?? null}
      WHERE o.id = ${claim.id} AND o.claimed_until = ${claim.claimedUntil}::timestamptz
        AND NOT EXISTS (
          SELECT 1 FROM push_outbox newer
          WHERE newer.push_token = o.push_token AND newer.pass_type_identifier = o.pass_type_identifier
            AND newer.claimed_until IS NULL)`;
    if (count > 0) return;
  } catch (error) {
    // The newer row committed between the NOT EXISTS check and the update.
    if (!isUniqueViolation(error)) throw error;
  }
  await completePush(prisma, claim);
}

/** Sends again later: with backoff after a failed attempt. */
async function schedulePushRetry(
  prisma: PrismaClient,
  claim: Claim,
  retry: { attempts: number; dueAt: Date; reason: string },
): Promise<void> {
  await releasePush(prisma, claim, { attempts: retry.attempts, dueAt: retry.dueAt, lastError: retry.reason });
}

/** Releases rows claimed but not sent (shutdown): due again at once, for this or another instance. */
async function releasePushes(prisma: PrismaClient, claims: readonly ClaimedPush[], now: Date): Promise<void> {
  for (const claim of claims) {
    await releasePush(prisma, claim, { attempts: claim.attempts, dueAt: now });
  }
}

/** The SHA-256 of a push token: push tokens are the device's secret, and never stored outside its rows. */
export function pushTokenHash(pushToken: string): string {
  return createHash('sha256').update(pushToken).digest('hex');
}

/** Gives up on a push: the row moves to push_failures (token hashed), in one statement. */
async function recordPushFailure(
  prisma: PrismaClient,
  claim: Claim & Pick<ClaimedPush, 'pushToken'>,
  failure: { reason: string; attempts: number; failedAt: Date },
): Promise<boolean> {
  const count = await prisma.$executeRaw`
    WITH failed AS (
      DELETE FROM push_outbox WHERE id = ${claim.id} AND claimed_until = ${claim.claimedUntil}::timestamptz
      RETURNING pass_type_identifier)
    INSERT INTO push_failures (push_token_hash, pass_type_identifier, reason, attempts, failed_at)
    SELECT ${pushTokenHash(claim.pushToken)}, pass_type_identifier, ${failure.reason}, ${failure.attempts},
      ${failure.failedAt}::timestamptz
    FROM failed`;
  return count > 0;
}

/** How many pushes were given up on, by reason (APNs's reason, or the worker's). */
async function pushFailureCounts(prisma: PrismaClient): Promise<Record<string, number>> {
  const rows = await prisma.$queryRaw<Array<{ reason: string; count: bigint }>>`
    SELECT reason, count(*) AS count FROM push_failures GROUP BY reason ORDER BY reason`;
  return Object.fromEntries(rows.map((row) => [row.reason, Number(row.count)]));
}

export interface OutboxStats {
  /** Rows waiting or in flight. */
  depth: number;
  /** Rows due now and not held by a live lease. */
  due: number;
  /** Rows held by a live lease (being sent). */
  claimed: number;
  /** How long the oldest due row has been due; 0 when nothing is due. */
  oldestDueAgeMs: number;
}

async function outboxStats(prisma: PrismaClient, now: Date): Promise<OutboxStats> {
  const [row] = await prisma.$queryRaw<
    Array<{ depth: bigint; due: bigint; claimed: bigint; oldest: Date | null }>
  >`
    WITH live AS (
      SELECT due_at, claimed_until IS NOT NULL AND claimed_until >= ${now}::timestamptz AS leased FROM push_outbox)
    SELECT count(*) AS depth,
      count(*) FILTER (WHERE NOT leased AND due_at <= ${now}::timestamptz) AS due,
      count(*) FILTER (WHERE leased) AS claimed,
      min(due_at) FILTER (WHERE NOT leased AND due_at <= ${now}::timestamptz) AS oldest
    FROM live`;
  const oldest = row?.oldest ?? null;
  return {
    depth: Number(row?.depth ?? 0),
    due: Number(row?.due ?? 0),
    claimed: Number(row?.claimed ?? 0),
    oldestDueAgeMs: oldest ? Math.max(0, now.getTime() - oldest.getTime()) : 0,
  };
}

/**
 * The change record for the push step: one row per push token the passes' registrations posted. A token that already
 * waits for a push of this pass type keeps its one row (changes coalesce); one whose push is in flight gets a new
 * row, since that push may reach the device before this change commits. The no-op DO UPDATE (not DO NOTHING)
 * locks the waiting row until this transaction commits: otherwise a worker could claim and send it before the
 * change is visible, the device would sync too early, and no row would be left for this change.
 */
async function enqueuePushes(
  query: SqlQuery,
  passIds: bigint | readonly bigint[],
  passTypeIdentifier: string,
  now: Date,
): Promise<number> {
  // One statement for a bulk job's page too (passes of one pass type). DISTINCT: a token registered for several
  // of the passes gets one row (ON CONFLICT cannot touch a row twice in one statement). Ordered by token, so two
  // changes lock the waiting rows in the same order and cannot deadlock on them.
  // Ids as strings (cast by the statement): every driver sends those alike. The count is of rows inserted or
  // touched, as an INSERT's row count would be, in one row.
  const ids = (typeof passIds === 'bigint' ? [passIds] : [...passIds]).map(String);
  const [counted] = await query<{ count: number }>(
    `WITH enqueued AS (
      INSERT INTO push_outbox (push_token, pass_type_identifier, enqueued_at, due_at)
      SELECT DISTINCT r.push_token, $1, $2::timestamptz, $2::timestamptz
      FROM registrations r
      WHERE r.pass_id = ANY($3::bigint[])
      ORDER BY r.push_token
      ON CONFLICT (push_token, pass_type_identifier) WHERE claimed_until IS NULL
        DO UPDATE SET claimed_until = push_outbox.claimed_until
      RETURNING 1)
    SELECT count(*)::int AS count FROM enqueued`,
    [passTypeIdentifier, now, ids],
  );
  return counted?.count ?? 0;
}

/** Filling the outbox, in the transaction of the change that the pushes tell about. */
export interface OutboxEnqueue {
  /** One row per push token registered for the passes (all of one pass type); returns the rows added or merged. */
  enqueue(passIds: bigint | readonly bigint[], passTypeIdentifier: string, now: Date): Promise<number>;
}

export const outboxEnqueueOn = (query: SqlQuery): OutboxEnqueue => ({
  enqueue: (passIds, passTypeIdentifier, now) => enqueuePushes(query, passIds, passTypeIdentifier, now),
});

/** The outbox as the push worker, the metrics and the admin API use it. */
export interface OutboxRepository extends OutboxEnqueue {
  claimDue(options: ClaimOptions): Promise<ClaimedPush[]>;
  /** The push went out (or is pointless now): the row is done. False when the lease was lost meanwhile. */
  complete(claim: Claim): Promise<boolean>;
  /** complete() for many rows in one statement; returns how many still held their lease and were deleted. */
  completeMany(claims: readonly Claim[]): Promise<number>;
  /** Gives the row back to the queue, due at `release.dueAt` (or merges it into a newer unclaimed row). */
  release(claim: Claim, release: Release): Promise<void>;
  /** Sends again later: with backoff after a failed attempt. */
  scheduleRetry(claim: Claim, retry: { attempts: number; dueAt: Date; reason: string }): Promise<void>;
  /** Releases rows claimed but not sent (shutdown): due again at once. */
  releaseAll(claims: readonly ClaimedPush[], now: Date): Promise<void>;
  /** Gives up on a push: the row moves to push_failures (token hashed). False when the lease was lost. */
  recordFailure(
    claim: Claim & Pick<ClaimedPush, 'pushToken'>,
    failure: { reason: string; attempts: number; failedAt: Date },
  ): Promise<boolean>;
  /** How many pushes were given up on, by reason. */
  failureCounts(): Promise<Record<string, number>>;
  stats(now: Date): Promise<OutboxStats>;
}

export function createOutboxRepository(db: { prisma: PrismaClient; query: SqlQuery }): OutboxRepository {
  const { prisma } = db;
  return {
    ...outboxEnqueueOn(db.query),
    claimDue: (options) => claimDuePushes(prisma, options),
    complete: (claim) => completePush(prisma, claim),
    completeMany: (claims) => completePushes(prisma, claims),
    release: (claim, release) => releasePush(prisma, claim, release),
    scheduleRetry: (claim, retry) => schedulePushRetry(prisma, claim, retry),
    releaseAll: (claims, now) => releasePushes(prisma, claims, now),
    recordFailure: (claim, failure) => recordPushFailure(prisma, claim, failure),
    failureCounts: () => pushFailureCounts(prisma),
    stats: (now) => outboxStats(prisma, now),
  };
}
