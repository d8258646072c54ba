import { Writable } from 'node:stream';
import jwt from 'jsonwebtoken';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/clock.js';
import { type ApnsClient, type ApnsClientOptions, createApnsClient } from '../../../src/push/apns/client.js';
import {
  generateProviderKey,
  type MockApns,
  type MockApnsOptions,
  pushTokenFor,
  startMockApns,
} from '../../support/mock-apns.js';

const MINUTE = 60_000;
const TOPIC = 'pass.com.example.event';
const KEY_ID = 'ABC123DEFG';
const TEAM_ID = 'TEAM123456';
const { keyPem, publicKeyPem } = generateProviderKey();

let mock: MockApns | undefined;
let client: ApnsClient | undefined;
const logLines: string[] = [];

afterEach(async () => {
  await client?.close();
  await mock?.close();
  client = undefined;
  mock = undefined;
  logLines.length = 0;
});

function fakeClock(start = Date.now()): Clock & { set(ms: number): void } {
  let t = start;
  return { now: () => new Date(t), set: (ms) => (t = ms) };
}

async function setup(
  mockOptions: MockApnsOptions = {},
  clientOptions: Partial<ApnsClientOptions> = {},
): Promise<{ mock: MockApns; client: ApnsClient }> {
  mock = await startMockApns({ keyId: KEY_ID, teamId: TEAM_ID, publicKeyPem, ...mockOptions });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  client = createApnsClient({
    origin: mock.origin,
    ca: mock.caPem,
    auth: { kind: 'token', keyPem, keyId: KEY_ID, teamId: TEAM_ID },
    log: pino({ level: 'debug' }, sink),
    ...clientOptions,
  });
  return { mock, client };
}

const sendMany = (c: ApnsClient, n: number, from = 0) =>
  Promise.all(Array.from({ length: n }, (_, i) => c.send(pushTokenFor(from + i), TOPIC)));

describe('APNs client, token authentication', () => {
  it('POSTs {} to /3/device/<token> with topic, push type and a verified JWT', async () => {
    const { mock, client } = await setup();
    const token = pushTokenFor(1);
    const outcome = await client.send(token, TOPIC);
    expect(outcome.kind).toBe('delivered');
    expect(outcome.kind === 'delivered' && outcome.apnsId).toMatch(/^[0-9a-f-]{36}$/);
    const [push] = mock.received;
    expect(push?.body).toBe('{}');
    expect(push?.pushToken).toBe(token);
    expect(push?.headers[':method']).toBe('POST');
    expect(push?.headers[':path']).toBe(`/3/device/${token}`);
    expect(push?.headers['apns-topic']).toBe(TOPIC);
    expect(push?.headers['apns-push-type']).toBe('background');
    expect(push?.headers['apns-priority']).toBeUndefined();
    const bearer = push?.headers.authorization ?? '';
    const decoded = jwt.verify(bearer.replace(/^bearer /, ''), publicKeyPem, { complete: true });
    expect(decoded.header).toEqual({ alg: 'ES256', kid: KEY_ID });
  });

  it('sends apns-priority and another push type when configured', async () => {
    const { mock, client } = await setup({}, { priority: 5, pushType: 'alert' });
    await client.send(pushTokenFor(1), TOPIC);
    expect(mock.received[0]?.headers['apns-priority']).toBe('5');
    expect(mock.received[0]?.headers['apns-push-type']).toBe('alert');
  });

  it('reuses one token for many requests on one session', async () => {
    const { mock, client } = await setup();
    const outcomes = await sendMany(client, 300);
    expect(outcomes.every((o) => o.kind === 'delivered')).toBe(true);
    expect(new Set(mock.received.map((r) => r.headers.authorization)).size).toBe(1);
    expect(mock.stats.sessions).toBe(1);
  });

  it('renews the token once it reaches the configured age', async () => {
    const clock = fakeClock();
    const { mock, client } = await setup({ clock }, { clock, tokenRenewAfterMs: 30 * MINUTE });
    await client.send(pushTokenFor(1), TOPIC);
    clock.set(clock.now().getTime() + 29 * MINUTE);
    await client.send(pushTokenFor(2), TOPIC);
    clock.set(clock.now().getTime() + 2 * MINUTE);
    await client.send(pushTokenFor(3), TOPIC);
    const tokens = mock.received.map((r) => r.headers.authorization);
    expect(tokens[0]).toBe(tokens[1]);
    expect(tokens[2]).not.toBe(tokens[1]);
    expect(mock.accepted()).toHaveLength(3);
  });

  it('403 ExpiredProviderToken: renews once for 100 concurrent requests and resends them', async () => {
    const clock = fakeClock();
    // APNs (here: 30 minutes) considers the token expired before the client's own renewal age (50 minutes).
    const { mock, client } = await setup(
      { clock, maxTokenAgeSec: 30 * 60 },
      { clock, tokenRenewAfterMs: 50 * MINUTE },
    );
    await client.send(pushTokenFor(0), TOPIC);
    clock.set(clock.now().getTime() + 40 * MINUTE);
    const outcomes = await sendMany(client, 100, 1);
    expect(outcomes.every((o) => o.kind === 'delivered')).toBe(true);
    const expired = mock.received.filter((r) => r.reason === 'ExpiredProviderToken');
    expect(expired).toHaveLength(100);
    expect(new Set(mock.received.map((r) => r.headers.authorization)).size).toBe(2);
    expect(mock.accepted()).toHaveLength(101);
  });

  it('403 ExpiredProviderToken twice: renews and resends once, then returns the answer', async () => {
    const clock = fakeClock();
    const { mock, client } = await setup({ clock }, { clock });
    await client.send(pushTokenFor(0), TOPIC);
    clock.set(clock.now().getTime() + 25 * MINUTE);
    mock.failNext(2, 403, 'ExpiredProviderToken');
    expect(await client.send(pushTokenFor(1), TOPIC)).toEqual({
      kind: 'renew-token',
      reason: 'ExpiredProviderToken',
    });
    expect(mock.received.filter((r) => r.pushToken === pushTokenFor(1))).toHaveLength(2);
  });

  it('a token the mock cannot verify fails with InvalidProviderToken', async () => {
    const other = generateProviderKey();
    const { client } = await setup({ publicKeyPem: other.publicKeyPem });
    expect(await client.send(pushTokenFor(1), TOPIC)).toEqual({
      kind: 'failed',
      reason: 'InvalidProviderToken',
    });
  });

  it('never logs push tokens or provider tokens', async () => {
    const { mock, client } = await setup();
    mock.failNext(1, 403, 'ExpiredProviderToken');
    mock.goawayAfterStreams(3);
    await sendMany(client, 10);
    const logs = logLines.join('\n');
    expect(logLines.length).toBeGreaterThan(0);
    for (let i = 0; i < 10; i++) expect(logs).not.toContain(pushTokenFor(i));
    expect(logs).not.toMatch(/eyJ/);
  });
});
