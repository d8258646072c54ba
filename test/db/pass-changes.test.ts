/*
 * The pass change feed against the real database (PostgreSQL under TEST_DATABASE_URL, else PGlite). Its sessions are
 * the real ones, wrapped only to slow down or drop what the database delivers, as a slow network or a stuck session
 * would: caughtUp() must still wait for every change committed before it was called.
 */
import { PGlite } from '@electric-sql/pglite';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, embeddedDatabase } from '../../src/db/database.js';
import { applyMigrations } from '../../src/db/migrations.js';
import {
  createPassChanges,
  embeddedNotificationSession,
  everyPass,
  type OpenNotificationSession,
  type PassChanges,
  passChangeKey,
  postgresNotificationSession,
} from '../../src/db/pass-changes.js';
import { insertPass } from '../push/outbox-fixtures.js';
import { openTestDatabase, testDatabaseUrl } from '../support/database.js';

const log = pino({ level: 'silent' });
let database: Database & { url?: string };
let session: OpenNotificationSession;

beforeAll(async () => {
  if (testDatabaseUrl) {
    database = await openTestDatabase();
    session = postgresNotificationSession(database.url ?? '');
  } else {
    const client = await PGlite.create();
    database = embeddedDatabase(client, log);
    await applyMigrations(database.adapterFactory);
    session = embeddedNotificationSession(client);
  }
});
afterAll(async () => {
  await database?.close();
});

/** The real session, with every notification handed over `delayMs` late (in order), or dropped when `drop` says. */
function slowed(delayMs: number, drop: (channel: string) => boolean = () => false): OpenNotificationSession {
  return (events) =>
    session({
      notification: (channel, payload) => {
        if (!drop(channel)) setTimeout(() => events.notification(channel, payload), delayMs);
      },
      lost: events.lost,
    });
}

async function listening(changes: PassChanges) {
  for (let i = 0; i < 200 && !(await changes.caughtUp()); i++) await new Promise((r) => setTimeout(r, 10));
  expect(await changes.caughtUp()).toBe(true);
}

let serial = 0;
/** A new pass of type pass.test.feed, inserted with SQL; its serial. */
async function insertFeedPass() {
  const serialNumber = `feed-${++serial}`;
  await insertPass(database.prisma, 'pass.test.feed', serialNumber);
  return serialNumber;
}

describe('pass change feed', () => {
  it('tells changes, creations and deletions by key, once each change commits', async () => {
    const changes = createPassChanges(session, { log });
    const told: string[] = [];
    changes.subscribe((key) => told.push(key));
    await listening(changes);
    told.length = 0;
    const serialNumber = await insertFeedPass();
    await database.prisma
      .$executeRaw`UPDATE passes SET version = version + 1 WHERE serial_number = ${serialNumber}`;
    // A change that touches none of what Wallet's requests check is not told.
    await database.prisma
      .$executeRaw`UPDATE passes SET fields = '{"a": 1}' WHERE serial_number = ${serialNumber}`;
    await database.prisma.$executeRaw`DELETE FROM passes WHERE serial_number = ${serialNumber}`;
    expect(await changes.caughtUp()).toBe(true);
    expect(told).toEqual(Array(3).fill(passChangeKey('pass.test.feed', serialNumber)));
    await changes.close();
  });

  it('caughtUp() waits for a change committed before it was called, however late its notification comes', async () => {
    const changes = createPassChanges(slowed(150), { log });
    const told: string[] = [];
    changes.subscribe((key) => told.push(key));
    await listening(changes);
    const serialNumber = await insertFeedPass();
    // The insert's notification is on its way, 150 ms late: caughtUp() must not answer before it is told.
    expect(await changes.caughtUp()).toBe(true);
    expect(told).toContain(passChangeKey('pass.test.feed', serialNumber));
    await changes.close();
  });

  it('shares one fence among the calls of one turn of the event loop, and the next among those made meanwhile', async () => {
    let fences = 0;
    const counting: OpenNotificationSession = async (events) => {
      const opened = await slowed(50)(events);
      return {
        ...opened,
        notify: (channel, payload) => {
          fences++;
          return opened.notify(channel, payload);
        },
      };
    };
    const changes = createPassChanges(counting, { log });
    await listening(changes);
    fences = 0;
    const calls = () => Array.from({ length: 100 }, () => changes.caughtUp());
    // 100 calls in one turn share one fence, the first call's as much as the others'.
    expect((await Promise.all(calls())).every(Boolean)).toBe(true);
    expect(fences).toBe(1);
    // The calls made once a fence is sent, while it is in flight, share the next one, sent once it is back.
    const first = calls();
    await new Promise((resolve) => setImmediate(resolve));
    expect(fences).toBe(2);
    const second = calls();
    expect((await Promise.all([...first, ...second])).every(Boolean)).toBe(true);
    expect(fences).toBe(3);
    await changes.close();
  });

  it('answers false and forgets everything when fences stop coming back, then listens again', async () => {
    let dropFences = false;
    const changes = createPassChanges(
      slowed(0, (channel) => dropFences && channel.startsWith('pass_changes_fence_')),
      { log, fenceTimeoutMs: 100, reconnectDelayMs: 50 },
    );
    const told: string[] = [];
    changes.subscribe((key) => told.push(key));
    await listening(changes);
    told.length = 0;
    dropFences = true;
    expect(await changes.caughtUp()).toBe(false);
    expect(told).toContain(everyPass);
    dropFences = false;
    await listening(changes);
    await changes.close();
  });
});
