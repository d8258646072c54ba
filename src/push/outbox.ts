/*
 * The push outbox in PostgreSQL. A change writes one row per push token and pass type in its own transaction
 * (passes.ts, enqueuePushes); workers on any number of server instances claim due rows here, send, and then
 * complete, retry or give up on them. A claim is a lease: a row claimed by a process that died becomes due again
 * when the lease runs out, so every push goes out at least once.
 *
 * Every follow-up of a claim (complete, retry, failure, release) matches the row's claimed_until as well as its
 * id: it acts only while the lease it was given still holds. A worker whose lease ran out (another worker
 * reclaimed and is sending) or whose row was released cannot delete a row that a later change coalesced into.
 */
import { createHash } from 'node:crypto';
import type { PrismaClient } from '../db/database.js';

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
export async function claimDuePushes(prisma: PrismaClient, options: ClaimOptions): Promise<ClaimedPush[]> {
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
export async function completePush(prisma: PrismaClient, claim: Claim): Promise<boolean> {
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
export async function completePushes(prisma: PrismaClient, claims: readonly Claim[]): Promise<number> {
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
export async function releasePush(prisma: PrismaClient, claim: Claim, release: Release): Promise<void> {
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
export async function schedulePushRetry(
  prisma: PrismaClient,
  claim: Claim,
  retry: { attempts: number; dueAt: Date; reason: string },
): Promise<void> {
  await releasePush(prisma, claim, { attempts: retry.attempts, dueAt: retry.dueAt, lastError: retry.reason });
}

/** Releases rows claimed but not sent (shutdown): due again at once, for this or another instance. */
export async function releasePushes(prisma: PrismaClient, claims: ClaimedPush[], now: Date): Promise<void> {
  for (const claim of claims) {
    await releasePush(prisma, claim, { attempts: claim.attempts, dueAt: now });
  }
}

/** The SHA-256 of a push token: push tokens are the device's secret, and never stored outside its rows. */
export function pushTokenHash(pushToken: string): string {
  return createHash('sha256').update(pushToken).digest('hex');
}

/** Gives up on a push: the row moves to push_failures (token hashed), in one statement. */
export async function recordPushFailure(
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

export interface RemovedRegistrations {
  registrations: number;
  devices: number;
}

/**
 * APNs said the push token is no longer active for the topic (410 Unregistered, or 400 BadDeviceToken): remove
 * the registrations of that token for passes of that pass type, then the devices left without registrations
 * (Apple: a device with no registered passes is forgotten). Apple's 410 carries the time APNs learned the token
 * was invalid; a registration made after it (registered_at > unregisteredAt) is newer news and is kept. The
 * devices are locked first, so a registration committing meanwhile is seen and its device is not deleted.
 */
export async function removeUnregisteredToken(
  prisma: PrismaClient,
  pushToken: string,
  passTypeIdentifier: string,
  unregisteredAt: Date,
): Promise<RemovedRegistrations> {
  return prisma.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT id FROM devices WHERE push_token = ${pushToken} ORDER BY id FOR UPDATE`;
    const removed = await tx.$queryRaw<Array<{ device_id: bigint }>>`
      DELETE FROM registrations r USING devices d, passes p
      WHERE r.device_id = d.id AND r.pass_id = p.id
        AND d.push_token = ${pushToken} AND p.pass_type_identifier = ${passTypeIdentifier}
        AND r.registered_at <= ${unregisteredAt}::timestamptz
      RETURNING r.device_id`;
    const deviceIds = [...new Set(removed.map((row) => row.device_id))];
    if (deviceIds.length === 0) return { registrations: 0, devices: 0 };
    // A separate statement: one statement does not see its own CTE's deletions.
    const devices = await tx.$executeRaw`
      DELETE FROM devices d WHERE d.id = ANY(${deviceIds}::bigint[])
        AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.device_id = d.id)`;
    return { registrations: removed.length, devices };
  });
}

/** How many pushes were given up on, by reason (APNs's reason, or the worker's). */
export async function pushFailureCounts(prisma: PrismaClient): Promise<Record<string, number>> {
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

export async function outboxStats(prisma: PrismaClient, now: Date): Promise<OutboxStats> {
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

/** PostgreSQL's unique_violation (23505), as Prisma reports it for raw queries with either adapter. */
function isUniqueViolation(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, meta } = error as Error & {
    code?: unknown;
    meta?: { code?: unknown; driverAdapterError?: unknown };
  };
  if (code === 'P2002' || code === '23505' || meta?.code === '23505') return true;
  return /23505|unique constraint|duplicate key/i.test(`${error.message} ${JSON.stringify(meta ?? {})}`);
}
