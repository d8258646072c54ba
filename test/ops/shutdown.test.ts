import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverDataEnv } from '../support/database.js';
import { freePort, type ServerProcess, startServerProcess } from '../support/process.js';
import { startTokenAuthApns, type TokenAuthApns } from '../support/token-auth-apns.js';
import { WalletDevice } from '../support/wallet-device.js';

/*
 * SIGTERM as Docker and Kubernetes send it, to the server process as `npm start` runs it, while Wallet devices
 * register and the admin changes passes. What the server answered 2xx it must have kept, and every change must
 * reach every device registered before it (at least once), after a restart if the shutdown left pushes behind.
 */
const adminToken = 'shutdown-test-admin-token-0123456789';
const passTypeIdentifier = 'pass.dev.passkit-server';
const shutdownTimeoutSeconds = 20;
const PATCHERS = 6;
const REGISTRARS = 24;

let apns: TokenAuthApns;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  apns = await startTokenAuthApns();
});
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
  await apns?.mock.close();
});

/** What one request came to: an HTTP status, or no answer at all (refused, reset, closed). */
type Outcome = { status: number; body: string } | { error: string };

interface Registration {
  device: WalletDevice;
  serialNumber: string;
  outcome: Outcome;
  doneAt: number;
}

interface Change {
  serialNumber: string;
  /** Unique per change of a pass: what the pass holds tells which change was the last one committed. */
  points: number;
  startedAt: number;
  outcome: Outcome;
}

function succeeded(outcome: Outcome): outcome is { status: number; body: string } {
  return 'status' in outcome && outcome.status >= 200 && outcome.status < 300;
}

async function attempt(request: () => Promise<Response>): Promise<Outcome> {
  try {
    const response = await request();
    return { status: response.status, body: await response.text() };
  } catch (error) {
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    return { error: String(cause?.code ?? cause?.message ?? error) };
  }
}

function admin(server: ServerProcess, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${server.baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${adminToken}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
}

async function createPass(server: ServerProcess) {
  const created = await admin(server, 'POST', '/admin/passes', {
    template: 'loyalty',
    fields: { points: 0 },
  });
  expect(created.status).toBe(201);
  const { serialNumber, downloadUrl } = (await created.json()) as {
    serialNumber: string;
    downloadUrl: string;
  };
  const bundle = Buffer.from(await (await fetch(downloadUrl)).arrayBuffer());
  return { serialNumber, bundle };
}

async function waitFor(condition: () => boolean, timeoutMs: number, what: () => string) {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function inBatches<T>(items: T[], size: number, each: (item: T) => Promise<void>) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(each));
}

describe('shutdown', () => {
  it('a SIGTERM under load loses no accepted request and no push', { timeout: 180_000 }, async () => {
    const port = await freePort();
    const env = {
      ...apns.env,
      ...(await serverDataEnv(cleanups)),
      ADMIN_TOKEN: adminToken,
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      SHUTDOWN_TIMEOUT_SECONDS: String(shutdownTimeoutSeconds),
      // Few, slow APNs streams: a backlog of pushes is waiting when SIGTERM comes.
      APNS_MAX_CONCURRENT_STREAMS: '5',
      PUSH_LEASE_SECONDS: '5',
      // The whole load comes from one address; a 429 would be a refusal, not what this test is about.
      RATE_LIMIT_PER_MINUTE: '0',
    };
    const first = await startServerProcess(env, port);
    const passes = await Promise.all(Array.from({ length: PATCHERS }, () => createPass(first)));
    apns.mock.setLatencyMs(100);

    const registrations: Registration[] = [];
    const changes: Change[] = [];
    let serverGone = false;
    let inFlight = 0;
    const track = async (request: () => Promise<Response>) => {
      inFlight++;
      try {
        return await attempt(request);
      } finally {
        inFlight--;
      }
    };
    // Once the listener is closed it never opens again: a refused connection ends that client's loop.
    const refused = (outcome: Outcome) => 'error' in outcome && outcome.error === 'ECONNREFUSED';

    const registrar = async (i: number) => {
      for (let n = 0; !serverGone; n++) {
        const pass = passes[(i + n) % passes.length] as (typeof passes)[number];
        const device = new WalletDevice();
        const outcome = await track(() => device.add(pass.bundle));
        registrations.push({ device, serialNumber: pass.serialNumber, outcome, doneAt: Date.now() });
        if (refused(outcome)) return;
      }
    };
    const patcher = async (i: number) => {
      const { serialNumber } = passes[i] as (typeof passes)[number];
      for (let points = 1; !serverGone; points++) {
        const startedAt = Date.now();
        const path = `/admin/passes/${passTypeIdentifier}/${serialNumber}`;
        const outcome = await track(() => admin(first, 'PATCH', path, { fields: { points } }));
        changes.push({ serialNumber, points, startedAt, outcome });
        if (refused(outcome)) return;
      }
    };
    const load = Promise.all([
      ...Array.from({ length: REGISTRARS }, (_, i) => registrar(i)),
      ...Array.from({ length: PATCHERS }, (_, i) => patcher(i)),
    ]);

    const accepted = (list: Array<{ outcome: Outcome }>) => list.filter((r) => succeeded(r.outcome)).length;
    await waitFor(
      () => accepted(registrations) >= 60 && accepted(changes) >= 20,
      60_000,
      () => `load to build up (${accepted(registrations)} registrations, ${accepted(changes)} changes)`,
    );
    const inFlightAtSigterm = inFlight;
    const sigtermAt = Date.now();
    first.child.kill('SIGTERM');
    const exitCode = await first.exited;
    const shutdownMs = Date.now() - sigtermAt;
    serverGone = true;
    await load;

    expect(exitCode, first.output().slice(-4000)).toBe(0);
    expect(shutdownMs).toBeLessThan(shutdownTimeoutSeconds * 1000);
    expect(inFlightAtSigterm).toBeGreaterThan(0);
    // Requests refused during shutdown are answered 503 (or not at all); nothing else but 2xx is expected.
    const unexpected = [...registrations, ...changes]
      .map((r) => r.outcome)
      .filter((outcome) => 'status' in outcome && outcome.status !== 503 && !succeeded(outcome));
    const errorLines = first
      .output()
      .split('\n')
      .filter((line) => line.includes('"level":50'));
    expect(unexpected, errorLines.join('\n')).toEqual([]);

    apns.mock.setLatencyMs(0);
    const restartedAt = Date.now();
    const second = await startServerProcess(env, port);
    try {
      // Every registration answered 2xx is there.
      const registered = registrations.filter((r) => succeeded(r.outcome));
      const missing: string[] = [];
      await inBatches(registered, 50, async ({ device, serialNumber }) => {
        const response = await fetch(
          `${second.baseUrl}/v1/devices/${device.deviceLibraryIdentifier}/registrations/${passTypeIdentifier}`,
        );
        const listed =
          response.status === 200 ? ((await response.json()) as { serialNumbers: string[] }) : null;
        if (!listed?.serialNumbers.includes(serialNumber)) missing.push(device.deviceLibraryIdentifier);
      });
      expect(missing).toEqual([]);

      // Every change answered 2xx is there: the pass holds the last one, or a later one whose answer was lost.
      for (const { serialNumber } of passes) {
        const mine = changes.filter((c) => c.serialNumber === serialNumber);
        const lastAcceptedIndex = mine.findLastIndex((c) => succeeded(c.outcome));
        const lastAccepted = mine[lastAcceptedIndex];
        if (!lastAccepted || !succeeded(lastAccepted.outcome)) continue;
        const acceptedVersion = (JSON.parse(lastAccepted.outcome.body) as { version: number }).version;
        const unanswered = mine.slice(lastAcceptedIndex + 1).filter((c) => 'error' in c.outcome);
        const response = await admin(second, 'GET', `/admin/passes/${passTypeIdentifier}/${serialNumber}`);
        const stored = (await response.json()) as {
          version: number;
          fields: { points: number };
          registeredDevices: number;
        };
        expect([lastAccepted, ...unanswered].map((c) => c.points)).toContain(stored.fields.points);
        if (stored.fields.points === lastAccepted.points) expect(stored.version).toBe(acceptedVersion);
        else expect(stored.version).toBeGreaterThan(acceptedVersion);
        expect(stored.registeredDevices).toBeGreaterThanOrEqual(
          registered.filter((r) => r.serialNumber === serialNumber).length,
        );
      }

      // Each device registered before a change began gets a push sent after that change began.
      const lastAcceptedPush = () => {
        const at = new Map<string, number>();
        for (const push of apns.mock.received)
          if (push.status === 200) at.set(push.pushToken, Math.max(push.at, at.get(push.pushToken) ?? 0));
        return at;
      };
      const owed = registered.flatMap(({ device, serialNumber, doneAt }) => {
        const later = changes.filter(
          (c) => c.serialNumber === serialNumber && c.startedAt > doneAt && succeeded(c.outcome),
        );
        return later.length === 0
          ? []
          : [{ token: device.pushToken, since: Math.max(...later.map((c) => c.startedAt)) }];
      });
      expect(owed.length).toBeGreaterThan(0);
      const unpushed = () => {
        const at = lastAcceptedPush();
        return owed.filter(({ token, since }) => (at.get(token) ?? 0) < since);
      };
      await waitFor(
        () => unpushed().length === 0,
        90_000,
        () => `pushes to ${unpushed().length} of ${owed.length} devices`,
      );
      // The shutdown left pushes behind, and the restarted server sent them: the case this test is about.
      const sentAfterRestart = apns.mock.received.filter((p) => p.status === 200 && p.at >= restartedAt);
      expect(sentAfterRestart.length).toBeGreaterThan(0);
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  });

  it('exits 1 when the shutdown outlives SHUTDOWN_TIMEOUT_SECONDS; the push it held goes out after a restart', {
    timeout: 120_000,
  }, async () => {
    const port = await freePort();
    const env = {
      ...apns.env,
      ...(await serverDataEnv(cleanups)),
      ADMIN_TOKEN: adminToken,
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      SHUTDOWN_TIMEOUT_SECONDS: '1',
      PUSH_LEASE_SECONDS: '2',
    };
    const first = await startServerProcess(env, port);
    const { serialNumber, bundle } = await createPass(first);
    const device = new WalletDevice();
    expect((await device.add(bundle)).status).toBe(201);
    // APNs hangs longer than the deadline: the worker is still waiting for its send when time is up.
    apns.mock.setLatencyMs(8_000);
    const since = Date.now();
    try {
      const path = `/admin/passes/${passTypeIdentifier}/${serialNumber}`;
      expect((await admin(first, 'PATCH', path, { fields: { points: 1 } })).status).toBe(200);
      await waitFor(
        () => apns.mock.received.some((push) => push.pushToken === device.pushToken && push.at >= since),
        20_000,
        () => 'the push to reach APNs',
      );
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(1);
      expect(first.output()).toContain('shutdown not finished within SHUTDOWN_TIMEOUT_SECONDS');
    } finally {
      apns.mock.setLatencyMs(0);
    }
    // The mock records a push when it arrives: only one that arrives after the restart counts.
    const restartedAt = Date.now();
    const second = await startServerProcess(env, port);
    try {
      await waitFor(
        () =>
          apns.mock.accepted().some((push) => push.pushToken === device.pushToken && push.at >= restartedAt),
        30_000,
        () => 'the push after the restart',
      );
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  });
});
