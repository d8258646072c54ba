import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type ApnsClient, type ApnsClientOptions, createApnsClient } from '../../../src/push/apns/client.js';
import type { ApnsOutcome } from '../../../src/push/apns/response.js';
import {
  generateProviderKey,
  type MockApns,
  type MockApnsOptions,
  pushTokenFor,
  startMockApns,
} from '../../support/mock-apns.js';

const TOPIC = 'pass.com.example.event';
const KEY_ID = 'ABC123DEFG';
const TEAM_ID = 'TEAM123456';
const { keyPem, publicKeyPem } = generateProviderKey();

let mock: MockApns | undefined;
let client: ApnsClient | undefined;

afterEach(async () => {
  await client?.close();
  await mock?.close();
  client = undefined;
  mock = undefined;
});

async function setup(
  mockOptions: MockApnsOptions = {},
  clientOptions: Partial<ApnsClientOptions> = {},
): Promise<{ mock: MockApns; client: ApnsClient }> {
  mock = await startMockApns({ keyId: KEY_ID, teamId: TEAM_ID, publicKeyPem, ...mockOptions });
  client = createApnsClient({
    origin: mock.origin,
    ca: mock.caPem,
    auth: { kind: 'token', keyPem, keyId: KEY_ID, teamId: TEAM_ID },
    log: pino({ level: 'silent' }),
    ...clientOptions,
  });
  return { mock, client };
}

const tokens = (n: number) => Array.from({ length: n }, (_, i) => pushTokenFor(i));
const sendAll = (c: ApnsClient, list: string[]) => Promise.all(list.map((t) => c.send(t, TOPIC)));

function countBy<T>(items: T[]): Map<T, number> {
  const counts = new Map<T, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
}

describe('APNs client over HTTP/2: answers become outcomes', () => {
  it.each<[number, string, Record<string, unknown> | undefined, ApnsOutcome]>([
    [400, 'BadDeviceToken', undefined, { kind: 'unregistered', reason: 'BadDeviceToken' }],
    [400, 'DeviceTokenNotForTopic', undefined, { kind: 'unregistered', reason: 'DeviceTokenNotForTopic' }],
    [429, 'TooManyRequests', undefined, { kind: 'retry', reason: 'TooManyRequests' }],
    [500, 'InternalServerError', undefined, { kind: 'retry', reason: 'InternalServerError' }],
    [503, 'ServiceUnavailable', undefined, { kind: 'retry', reason: 'ServiceUnavailable' }],
    [400, 'BadTopic', undefined, { kind: 'failed', reason: 'BadTopic' }],
    [413, 'PayloadTooLarge', undefined, { kind: 'failed', reason: 'PayloadTooLarge' }],
  ])('%i %s', async (status, reason, extra, expected) => {
    const { mock, client } = await setup();
    mock.failNext(1, status, reason, extra);
    expect(await client.send(pushTokenFor(1), TOPIC)).toEqual(expected);
    expect(await client.send(pushTokenFor(2), TOPIC)).toMatchObject({ kind: 'delivered' });
  });

  it('410 Unregistered for one token, with its timestamp', async () => {
    const { mock, client } = await setup();
    const at = Date.UTC(2025, 5, 1);
    mock.failTokens.set(pushTokenFor(7), { status: 410, reason: 'Unregistered', timestamp: at });
    const [gone, fine] = await sendAll(client, [pushTokenFor(7), pushTokenFor(8)]);
    expect(gone).toEqual({ kind: 'unregistered', reason: 'Unregistered', unregisteredAt: new Date(at) });
    expect(fine?.kind).toBe('delivered');
  });

  it('a push token that cannot be a path segment is answered like APNs, without breaking the session', async () => {
    const { mock, client } = await setup();
    expect(await client.send('ab/cd\n', TOPIC)).toEqual({ kind: 'unregistered', reason: 'BadDeviceToken' });
    expect(await client.send(pushTokenFor(1), 'bad\ntopic')).toMatchObject({ kind: 'failed' });
    expect((await client.send(pushTokenFor(2), TOPIC)).kind).toBe('delivered');
    expect(mock.stats.sessions).toBe(1);
  });

  it('a malformed push token is answered 400 BadDeviceToken by APNs', async () => {
    const { client } = await setup();
    expect(await client.send('not-a-token', TOPIC)).toEqual({
      kind: 'unregistered',
      reason: 'BadDeviceToken',
    });
  });
});

describe('APNs client over HTTP/2: connection behaviour', () => {
  it('GOAWAY after K streams, 200 concurrent sends: each push acknowledged exactly once', async () => {
    const { mock, client } = await setup();
    mock.goawayAfterStreams(37);
    mock.setLatencyMs(5);
    const list = tokens(200);
    const outcomes = await sendAll(client, list);
    expect(outcomes.every((o) => o.kind === 'delivered')).toBe(true);
    expect(mock.stats.goaways).toBeGreaterThanOrEqual(5);
    const counts = countBy(mock.accepted().map((r) => r.pushToken));
    expect(counts.size).toBe(200);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it('a dropped connection: in-flight requests are resent on a new session and acknowledged', async () => {
    const { mock, client } = await setup();
    mock.setLatencyMs(20);
    mock.dropConnectionAfterStreams(30);
    const list = tokens(60);
    const outcomes = await sendAll(client, list);
    expect(outcomes.every((o) => o.kind === 'delivered')).toBe(true);
    expect(mock.stats.drops).toBe(1);
    expect(mock.stats.sessions).toBe(2);
    expect(new Set(mock.accepted().map((r) => r.pushToken)).size).toBe(60);
  });

  it('a request that fails with the connection twice becomes a retry outcome', async () => {
    const { mock, client } = await setup();
    mock.dropConnectionAfterStreams(0, 2);
    const outcome = await client.send(pushTokenFor(1), TOPIC);
    expect(mock.stats.drops).toBe(2);
    expect(outcome.kind).toBe('retry');
    expect(outcome.kind === 'retry' && outcome.reason).toMatch(/^ConnectionError/);
  });

  it('one stream at first, more after the first valid token: all succeed, concurrency rises', async () => {
    const { mock, client } = await setup({ initialMaxConcurrentStreams: 1, maxConcurrentStreams: 50 });
    mock.setLatencyMs(10);
    const outcomes = await sendAll(client, tokens(150));
    expect(outcomes.every((o) => o.kind === 'delivered')).toBe(true);
    expect(mock.accepted()).toHaveLength(150);
    expect(mock.stats.maxConcurrentSeen).toBeGreaterThan(1);
    expect(mock.stats.maxConcurrentSeen).toBeLessThanOrEqual(50);
    // The first request went alone; the second waited for its answer (and the raised limit).
    const [first, second] = mock.received;
    expect(first?.concurrent).toBe(1);
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(9);
  });

  it('respects its own cap below the server limit', async () => {
    const { mock, client } = await setup({}, { maxConcurrentStreams: 7 });
    mock.setLatencyMs(5);
    await sendAll(client, tokens(70));
    expect(mock.stats.maxConcurrentSeen).toBe(7);
  });

  it('spreads requests over several connections', async () => {
    const { mock, client } = await setup({}, { connections: 3 });
    mock.setLatencyMs(5);
    const outcomes = await sendAll(client, tokens(90));
    expect(outcomes.every((o) => o.kind === 'delivered')).toBe(true);
    expect(mock.stats.sessions).toBe(3);
  });

  it('a session whose ping goes unanswered is replaced', async () => {
    const { mock, client } = await setup({}, { pingIntervalMs: 40 });
    expect((await client.send(pushTokenFor(1), TOPIC)).kind).toBe('delivered');
    mock.stallConnections();
    await new Promise((r) => setTimeout(r, 150));
    expect((await client.send(pushTokenFor(2), TOPIC)).kind).toBe('delivered');
    expect(mock.stats.sessions).toBe(2);
  });

  it('latency beyond the request timeout gives a retry outcome', async () => {
    const { mock, client } = await setup({}, { requestTimeoutMs: 100 });
    mock.setLatencyMs(400);
    const started = Date.now();
    expect(await client.send(pushTokenFor(1), TOPIC)).toEqual({ kind: 'retry', reason: 'Timeout' });
    expect(Date.now() - started).toBeLessThan(300);
    mock.setLatencyMs(0);
    expect((await client.send(pushTokenFor(2), TOPIC)).kind).toBe('delivered');
  });

  it('an unreachable APNs gives retry outcomes quickly', async () => {
    const { mock } = await setup();
    const origin = mock.origin;
    await mock.close();
    const c = createApnsClient({
      origin,
      auth: { kind: 'token', keyPem, keyId: KEY_ID, teamId: TEAM_ID },
      log: pino({ level: 'silent' }),
    });
    const outcome = await c.send(pushTokenFor(1), TOPIC);
    expect(outcome).toEqual({ kind: 'retry', reason: 'ConnectionFailed' });
    await c.close();
  });

  it('close() waits for in-flight requests', async () => {
    const { mock, client } = await setup();
    mock.setLatencyMs(50);
    const pending = sendAll(client, tokens(20));
    await new Promise((r) => setTimeout(r, 10));
    await client.close();
    const outcomes = await pending;
    expect(outcomes.every((o) => o.kind === 'delivered')).toBe(true);
    expect(await client.send(pushTokenFor(99), TOPIC)).toEqual({ kind: 'retry', reason: 'ClientClosed' });
  });
});
