import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Clock } from '../clock.js';
import type { ApnsConfig } from '../config.js';
import type { Repositories } from '../db/repositories.js';
import { StartupError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Identities, PassTypeIdentity } from '../signing/identities.js';
import { type ApnsAuth, type ApnsClient, createApnsClient } from './apns/client.js';
import type { ApnsOutcome } from './apns/response.js';
import { type PushWorker, startPushWorker } from './worker.js';

export interface Pushes {
  worker: PushWorker;
  /** Stops claiming, lets sends in flight finish or gives their rows back, then closes the APNs connections. */
  close(): Promise<void>;
}

/**
 * How an identity authenticates to APNs: its own .p8 key if it was added with one; an identity added through the
 * API otherwise with its certificate; a configured one as APNS_AUTH says, token auth with APNS_KEY_* or (the
 * default) TLS client auth with the Pass Type ID certificate: Apple's Wallet documentation says the push uses "the
 * same certificate and private key" as the pass.
 */
function apnsAuth(config: ApnsConfig, identity: PassTypeIdentity): ApnsAuth {
  const { signing, apnsToken } = identity;
  if (apnsToken) return { kind: 'token', ...apnsToken };
  if (identity.source === 'api' || config.auth === 'certificate') {
    return {
      kind: 'certificate',
      certPem: signing.signerCert,
      keyPem: signing.signerKey,
      ...(signing.signerKeyPassphrase ? { passphrase: signing.signerKeyPassphrase } : {}),
    };
  }
  // APNS_KEY_PEM (from a secret store) needs no file in the container.
  const keyPem = config.keyPem ?? (config.keyFile ? readKeyFile(config.keyFile) : undefined);
  if (!keyPem || !config.keyId)
    throw new StartupError('APNS_KEY_FILE (or APNS_KEY_PEM) and APNS_KEY_ID are required for token auth');
  return { kind: 'token', keyPem, keyId: config.keyId, teamId: config.teamId ?? signing.teamIdentifier };
}

/** Identities with the same credentials share one client (one set of HTTP/2 connections); others get their own. */
function credentialsKey(auth: ApnsAuth): string {
  const digest = (text: string) => createHash('sha256').update(text).digest('hex');
  return auth.kind === 'certificate'
    ? `certificate ${digest(auth.certPem)}`
    : `token ${auth.keyId} ${auth.teamId} ${digest(auth.keyPem)}`;
}

function readKeyFile(keyFile: string): string {
  try {
    return readFileSync(keyFile, 'utf8');
  } catch {
    throw new StartupError(`APNS_KEY_FILE: cannot read ${keyFile}`);
  }
}

export function startPushes(options: {
  config: ApnsConfig;
  identities: Pick<Identities, 'find' | 'primary'>;
  repositories: Pick<Repositories, 'outbox' | 'registrations'>;
  clock: Clock;
  log: Logger;
  /** An extra CA for the APNs connection (benchmarks against a local mock); NODE_EXTRA_CA_CERTS also works. */
  ca?: string;
  /** What APNs answered each send, for the metrics. */
  onOutcome?: (outcome: ApnsOutcome) => void;
  /** How long close() lets sends in flight finish before giving their rows back (within the shutdown deadline). */
  stopTimeoutMs?: number;
}): Pushes {
  const log = options.log.child({ component: 'push' });
  const clients = new Map<string, ApnsClient>();
  /** The credentials each pass type identifier was last sent with: a rotation leaves the old client unused. */
  const topics = new Map<string, string>();
  const retiring = new Set<Promise<void>>();
  /** Per identity object (a rotation makes a new one): no digest of its credentials on every send. */
  const chosen = new WeakMap<PassTypeIdentity, ApnsClient>();
  const clientFor = (identity: PassTypeIdentity): ApnsClient => {
    const known = chosen.get(identity);
    if (known) return known;
    const auth = apnsAuth(options.config, identity);
    const key = credentialsKey(auth);
    let client = clients.get(key);
    if (!client) {
      client = createApnsClient({
        origin: options.config.origin,
        auth,
        pushType: options.config.pushType,
        ...(options.config.priority ? { priority: options.config.priority } : {}),
        maxConcurrentStreams: options.config.maxConcurrentStreams,
        clock: options.clock,
        log,
        ...(options.ca ? { ca: options.ca } : {}),
      });
      clients.set(key, client);
    }
    const topic = identity.signing.passTypeIdentifier;
    const previous = topics.get(topic);
    topics.set(topic, key);
    if (previous !== undefined && previous !== key) retireIfUnused(previous);
    chosen.set(identity, client);
    return client;
  };
  const retireIfUnused = (key: string) => {
    const client = clients.get(key);
    if (!client || [...topics.values()].includes(key)) return;
    clients.delete(key);
    // Its sends in flight finish first (ApnsClient.close).
    const closing = client.close().finally(() => retiring.delete(closing));
    retiring.add(closing);
  };
  // The primary identity's client at once: a configuration problem (an unreadable APNS_KEY_FILE) stops the start.
  clientFor(options.identities.primary());

  const send = async (pushToken: string, topic: string): Promise<ApnsOutcome> => {
    let identity: PassTypeIdentity | undefined;
    try {
      identity = await options.identities.find(topic);
    } catch (error) {
      log.warn({ err: error, topic }, 'identity lookup failed; the push is retried');
      return { kind: 'retry', reason: 'IdentityLookupFailed' };
    }
    // Apple: the topic is the pass type identifier, and only its own certificate (or its team's key) may push to it.
    if (!identity) return { kind: 'failed', reason: 'UnknownPassTypeIdentifier' };
    return clientFor(identity).send(pushToken, topic);
  };
  const worker = startPushWorker({
    repositories: options.repositories,
    send,
    clock: options.clock,
    log,
    concurrency: options.config.maxConcurrentStreams,
    maxAttempts: options.config.maxAttempts,
    leaseMs: options.config.leaseMs,
    ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
    ...(options.stopTimeoutMs ? { stopTimeoutMs: options.stopTimeoutMs } : {}),
  });
  return {
    worker,
    async close() {
      await worker.stop();
      await Promise.all([...clients.values()].map((client) => client.close()));
      await Promise.all(retiring);
    },
  };
}
