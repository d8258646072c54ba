import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ApnsClient, createApnsClient } from '../../../src/push/apns/client.js';
import { type MockApns, pushTokenFor, startMockApns } from '../../support/mock-apns.js';

const TOPIC = 'pass.com.example.event';

/** A CA, a Pass Type ID-like client certificate it signs (UID = topic), and a stranger's certificate. */
interface TestPki {
  caPem: string;
  client: { certPem: string; keyPem: string };
  stranger: { certPem: string; keyPem: string };
}

function makePki(dir: string): TestPki {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=Test WWDR CA',
  );
  // Apple's Pass Type ID certificates carry the pass type identifier as UID.
  const subject = `/UID=${TOPIC}/CN=Pass Type ID: ${TOPIC}/OU=TEAM123456/O=Example/C=US`;
  openssl('req', '-new', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', subject);
  openssl(
    'x509',
    '-req',
    '-in',
    'client.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'client.pem',
    '-days',
    '2',
  );
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'stranger.key',
    '-out',
    'stranger.pem',
    '-days',
    '2',
    '-subj',
    subject,
  );
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return {
    caPem: read('ca.pem'),
    client: { certPem: read('client.pem'), keyPem: read('client.key') },
    stranger: { certPem: read('stranger.pem'), keyPem: read('stranger.key') },
  };
}

let dir = '';
let pki: TestPki;
let mock: MockApns;
let client: ApnsClient | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'apns-pki-'));
  pki = makePki(dir);
  mock = await startMockApns({ clientCa: pki.caPem });
});

afterAll(async () => {
  await mock.close();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  await client?.close();
  client = undefined;
});

function connect(identity: { certPem: string; keyPem: string }): ApnsClient {
  client = createApnsClient({
    origin: mock.origin,
    ca: mock.caPem,
    auth: { kind: 'certificate', ...identity },
    log: pino({ level: 'silent' }),
  });
  return client;
}

describe('APNs client, certificate authentication', () => {
  it('delivers with the Pass Type ID certificate, without an authorization header', async () => {
    const c = connect(pki.client);
    const outcomes = await Promise.all([1, 2, 3].map((i) => c.send(pushTokenFor(i), TOPIC)));
    expect(outcomes.map((o) => o.kind)).toEqual(['delivered', 'delivered', 'delivered']);
    const push = mock.received.at(-1);
    expect(push?.headers.authorization).toBeUndefined();
    expect(push?.headers['apns-topic']).toBe(TOPIC);
    expect(push?.body).toBe('{}');
  });

  it('a topic other than the certificate UID fails (TopicDisallowed)', async () => {
    const c = connect(pki.client);
    expect(await c.send(pushTokenFor(1), 'pass.com.example.other')).toEqual({
      kind: 'failed',
      reason: 'TopicDisallowed',
    });
  });

  it('a certificate not signed by the CA is rejected in the TLS handshake: retry outcome', async () => {
    const c = connect(pki.stranger);
    const before = mock.received.length;
    const outcome = await c.send(pushTokenFor(1), TOPIC);
    expect(outcome).toEqual({ kind: 'retry', reason: 'ConnectionFailed' });
    expect(mock.received.length).toBe(before);
  });
});
