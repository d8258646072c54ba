import { createHash } from 'node:crypto';
import type { Database, PrismaClient } from '../../src/db/database.js';

/** Passes, devices and registrations as the wallet routes store them, with raw SQL (no pass signing needed). */
export async function insertPass(prisma: PrismaClient, passTypeIdentifier: string, serialNumber: string) {
  const [row] = await prisma.$queryRaw<Array<{ id: bigint }>>`
    INSERT INTO passes (pass_type_identifier, serial_number, authentication_token, template, last_modified)
    VALUES (${passTypeIdentifier}, ${serialNumber}, 'secret-token-0123456789', 'loyalty', now())
    RETURNING id`;
  if (!row) throw new Error('no pass inserted');
  return row.id;
}

/** devices.push_token is deprecated (read by nothing, kept for the previous release): the tokens are the registrations'. */
export async function insertDevice(prisma: PrismaClient, deviceLibraryIdentifier: string) {
  const [row] = await prisma.$queryRaw<Array<{ id: bigint }>>`
    INSERT INTO devices (device_library_identifier, push_token) VALUES (${deviceLibraryIdentifier}, '')
    RETURNING id`;
  if (!row) throw new Error('no device inserted');
  return row.id;
}

/** Empties the tables these tests fill, so that each test starts from none. */
export async function emptyPushTables(prisma: PrismaClient) {
  await prisma.$executeRaw`TRUNCATE push_outbox, push_failures, registrations, devices, passes CASCADE`;
}

export async function register(
  prisma: PrismaClient,
  registration: { deviceId: bigint; passId: bigint; pushToken: string; registeredAt: Date },
) {
  const { deviceId, passId, pushToken, registeredAt } = registration;
  await prisma.$executeRaw`
    INSERT INTO registrations (device_id, pass_id, push_token, registered_at)
    VALUES (${deviceId}, ${passId}, ${pushToken}, ${registeredAt}::timestamptz)`;
}

/** The pass type of the outbox and worker tests' passes: the APNs topic of their pushes. */
export const passType = 'pass.com.example.loyalty';

/**
 * A pass (of `passType` and serial number 'a' unless given) with `count` devices registered, and one change
 * enqueued for it.
 */
export async function passWithDevices(
  database: Pick<Database, 'prisma' | 'repositories'>,
  {
    passTypeIdentifier = passType,
    serialNumber = 'a',
    ...options
  }: {
    passTypeIdentifier?: string;
    serialNumber?: string;
    count: number;
    now: Date;
  },
) {
  const { prisma } = database;
  const passId = await insertPass(prisma, passTypeIdentifier, serialNumber);
  const pushTokens: string[] = [];
  for (let i = 0; i < options.count; i += 1) {
    // APNs push tokens are 64 hexadecimal digits (or more).
    const pushToken = createHash('sha256').update(`${serialNumber}/${i}`).digest('hex');
    const deviceId = await insertDevice(prisma, `${serialNumber}-device-${i}`);
    await register(prisma, { deviceId, passId, pushToken, registeredAt: options.now });
    pushTokens.push(pushToken);
  }
  await database.repositories.outbox.enqueue(passId, passTypeIdentifier, options.now);
  return { passId, pushTokens };
}

export interface OutboxRow {
  id: bigint;
  push_token: string;
  attempts: number;
  due_at: Date;
  claimed_until: Date | null;
  last_error: string | null;
}

export async function outboxRows(prisma: PrismaClient): Promise<OutboxRow[]> {
  return prisma.$queryRaw<OutboxRow[]>`
    SELECT id, push_token, attempts, due_at, claimed_until, last_error FROM push_outbox ORDER BY id`;
}

/** A clock the test moves by hand. */
export function manualClock(start = new Date('2026-03-01T12:00:00.000Z')) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now = new Date(now.getTime() + ms);
    },
  };
}
