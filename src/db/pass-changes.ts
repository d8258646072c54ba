/*
 * Word of changed passes, from PostgreSQL's LISTEN/NOTIFY: a trigger on `passes` (migration
 * 20261123205300_pass_change_notifications) notifies `pass_changes` with the pass's key whenever its token, version
 * or Last-Modified changes or it is deleted, whoever wrote it. Each server instance listens on one dedicated session,
 * so it can remember what Wallet's requests check and still never answer with an older version than the database's.
 *
 * PostgreSQL's rules this relies on (NOTIFY's documentation): a notification is delivered only after its transaction
 * commits, and a session receives notifications in the order their transactions committed, its own included. So
 * once a marker this instance notifies on its own channel (a "fence") comes back, every change committed before the
 * marker was sent has been delivered. `caughtUp()` waits for such a fence. Calls share fences: those made in one turn
 * of the event loop share one, and those made while it is in flight share the next, so the database sees at most one
 * tiny statement per round trip, not one per request.
 */
import { randomBytes } from 'node:crypto';
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import type { Logger } from '../logger.js';

export const passChangesChannel = 'pass_changes';

/** A pass's key as the trigger names it: type, newline, serial (Wallet's identifiers hold no control characters). */
export const passChangeKey = (passTypeIdentifier: string, serialNumber: string) =>
  `${passTypeIdentifier}\n${serialNumber}`;

/** Told of each changed or deleted pass by its key, or `everyPass` when notifications may have been missed. */
export type PassChangeListener = (key: string) => void;
export const everyPass = '';

export interface PassChanges {
  /**
   * True once every pass change committed before the call has been told to the listeners; false while this
   * instance is not listening (starting, or its session was lost), when a caller must read the database.
   */
  caughtUp(): Promise<boolean>;
  /** Whether the LISTEN session is open (for the metrics: while it is not, every Wallet request reads the database). */
  readonly listening: boolean;
  subscribe(listener: PassChangeListener): void;
  close(): Promise<void>;
}

/** One database session kept open for LISTEN. */
export interface NotificationSession {
  listen(channel: string): Promise<void>;
  notify(channel: string, payload: string): Promise<void>;
  close(): Promise<void>;
}

export interface SessionEvents {
  notification(channel: string, payload: string): void;
  /** The session is gone (error, end): notifications from then on are not delivered. */
  lost(error: unknown): void;
}

export type OpenNotificationSession = (events: SessionEvents) => Promise<NotificationSession>;

/** A dedicated pg client (not from the pool: LISTEN belongs to its session), with TCP keep-alive. */
export function postgresNotificationSession(connectionString: string): OpenNotificationSession {
  return async (events) => {
    const client = new pg.Client({
      connectionString,
      keepAlive: true,
      application_name: 'passkit-server listen',
    });
    client.on('notification', (message) => events.notification(message.channel, message.payload ?? ''));
    client.on('error', (error) => events.lost(error));
    client.on('end', () => events.lost(new Error('the LISTEN session ended')));
    await client.connect();
    // A fence's transaction stores nothing: it need not wait for its commit record to reach the disk.
    await client.query('SET synchronous_commit TO off');
    return {
      listen: async (channel) => {
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      },
      // A statement without parameters goes as one simple-protocol message: about half the work of a parameterized
      // one for pg, and fences are sent thousands of times a second under load.
      notify: async (channel, payload) => {
        await client.query(`NOTIFY ${pg.escapeIdentifier(channel)}, ${pg.escapeLiteral(payload)}`);
      },
      close: () => client.end(),
    };
  };
}

/** PGlite is one session in this process: its listen() hands over the notifications of every transaction. */
export function embeddedNotificationSession(client: PGlite): OpenNotificationSession {
  return async (events) => {
    const unlisten: Array<() => Promise<void>> = [];
    return {
      listen: async (channel) => {
        unlisten.push(await client.listen(channel, (payload) => events.notification(channel, payload)));
      },
      notify: async (channel, payload) => {
        await client.query('SELECT pg_notify($1, $2)', [channel, payload]);
      },
      close: async () => {
        for (const stop of unlisten.splice(0)) await stop();
      },
    };
  };
}

export interface PassChangesOptions {
  log: Logger;
  /** A fence not back within this long means the session is stuck: it is dropped and opened again. Infinity: never. */
  fenceTimeoutMs?: number;
  /** First wait before opening a lost session again; doubles per failure up to 10 s. */
  reconnectDelayMs?: number;
}

interface Fence {
  seq: number;
  done: Promise<boolean>;
  settle(caughtUp: boolean): void;
}

export function createPassChanges(open: OpenNotificationSession, options: PassChangesOptions): PassChanges {
  const { log } = options;
  const fenceTimeoutMs = options.fenceTimeoutMs ?? 2_000;
  const firstDelayMs = options.reconnectDelayMs ?? 250;
  // This instance's own channel: other instances' fences are not broadcast to it.
  const fenceChannel = `pass_changes_fence_${randomBytes(8).toString('hex')}`;
  const listeners: PassChangeListener[] = [];
  let session: NotificationSession | undefined;
  // Each opening attempt has a number: events of an older session (late errors, its 'end') are ignored.
  let attempt = 0;
  let delayMs = firstDelayMs;
  let reconnect: NodeJS.Timeout | undefined;
  let closed = false;
  let fenceSeq = 0;
  let inFlight: Fence | undefined;
  // The next fence until it is sent: every call made before then shares it.
  let next: Promise<boolean> | undefined;

  const tell = (key: string) => {
    for (const listener of listeners) listener(key);
  };

  const lose = (from: number, error: unknown) => {
    if (closed || from !== attempt) return;
    attempt++;
    const lost = session;
    session = undefined;
    inFlight?.settle(false);
    // Whatever was remembered may have changed unseen from now on.
    tell(everyPass);
    log.warn(
      { err: error },
      'not listening for pass changes: Wallet requests read the database until it is back',
    );
    lost?.close().catch(() => {});
    reconnect = setTimeout(() => void connect(), delayMs);
    reconnect.unref();
    delayMs = Math.min(delayMs * 2, 10_000);
  };

  const connect = async () => {
    const mine = ++attempt;
    let opened: NotificationSession | undefined;
    try {
      opened = await open({
        notification: (channel, payload) => {
          if (mine !== attempt) return;
          if (channel === passChangesChannel) tell(payload);
          else if (channel === fenceChannel && inFlight?.seq === Number(payload)) inFlight.settle(true);
        },
        lost: (error) => lose(mine, error),
      });
      await opened.listen(passChangesChannel);
      await opened.listen(fenceChannel);
      if (closed || mine !== attempt) {
        await opened.close();
        return;
      }
      session = opened;
      // Changes made before LISTEN took effect were never told: nothing remembered from before is trusted.
      tell(everyPass);
      if (delayMs !== firstDelayMs) log.info('listening for pass changes again');
      delayMs = firstDelayMs;
    } catch (error) {
      opened?.close().catch(() => {});
      lose(mine, error);
    }
  };

  const startFence = (): Promise<boolean> => {
    const current = session;
    if (!current) return Promise.resolve(false);
    const from = attempt;
    let resolve: (caughtUp: boolean) => void = () => {};
    const done = new Promise<boolean>((r) => {
      resolve = r;
    });
    const timer = Number.isFinite(fenceTimeoutMs)
      ? setTimeout(() => lose(from, new Error(`no fence back within ${fenceTimeoutMs} ms`)), fenceTimeoutMs)
      : undefined;
    timer?.unref();
    const fence: Fence = {
      seq: ++fenceSeq,
      done,
      settle(caughtUp) {
        clearTimeout(timer);
        if (inFlight === fence) inFlight = undefined;
        resolve(caughtUp);
      },
    };
    inFlight = fence;
    current.notify(fenceChannel, String(fence.seq)).catch((error: unknown) => lose(from, error));
    return done;
  };

  /**
   * Sends the next fence once the one in flight is back (that one was sent before the calls now waiting, so it does
   * not cover them), at setImmediate: after the event loop's poll phase, so that all the requests read from the
   * sockets in this turn share one fence, rather than the first sending one and the rest waiting for another. Under
   * load that is about a third fewer fences, and more of the answers written together (bench/RESULTS.md).
   */
  const sendNextFence = async (): Promise<boolean> => {
    if (inFlight) await inFlight.done;
    await new Promise<void>((resolve) => setImmediate(resolve));
    next = undefined;
    return startFence();
  };

  void connect();
  return {
    caughtUp() {
      if (!session) return Promise.resolve(false);
      next ??= sendNextFence();
      return next;
    },
    get listening() {
      return session !== undefined;
    },
    subscribe(listener) {
      listeners.push(listener);
    },
    async close() {
      closed = true;
      clearTimeout(reconnect);
      inFlight?.settle(false);
      const current = session;
      session = undefined;
      await current?.close();
    },
  };
}
