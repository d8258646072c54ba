import { readFileSync } from 'node:fs';
import type { Clock } from '../clock.js';
import type { ApnsConfig } from '../config.js';
import type { Repositories } from '../db/repositories.js';
import { StartupError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { SigningIdentity } from '../signing/identity.js';
import { type ApnsAuth, createApnsClient } from './apns/client.js';
import type { ApnsOutcome } from './apns/response.js';
import { type PushWorker, startPushWorker } from './worker.js';

export interface Pushes {
  worker: PushWorker;
  /** Stops claiming, lets sends in flight finish or gives their rows back, then closes the APNs connections. */
  close(): Promise<void>;
}

/**
 * Token auth with a .p8 key, or (the default) TLS client auth with the Pass Type ID certificate that signs the
 * passes: Apple's Wallet documentation says the push uses "the same certificate and private key" as the pass.
 */
function apnsAuth(config: ApnsConfig, identity: SigningIdentity): ApnsAuth {
  if (config.auth === 'certificate') {
    return {
      kind: 'certificate',
      certPem: identity.signerCert,
      keyPem: identity.signerKey,
      ...(identity.signerKeyPassphrase ? { passphrase: identity.signerKeyPassphrase } : {}),
    };
  }
  // APNS_KEY_PEM (from a secret store) needs no file in the container.
  const keyPem = config.keyPem ?? (config.keyFile ? readKeyFile(config.keyFile) : undefined);
  if (!keyPem || !config.keyId)
    throw new StartupError('APNS_KEY_FILE (or APNS_KEY_PEM) and APNS_KEY_ID are required for token auth');
  return { kind: 'token', keyPem, keyId: config.keyId, teamId: config.teamId ?? identity.teamIdentifier };
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
  identity: SigningIdentity;
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
  const client = createApnsClient({
    origin: options.config.origin,
    auth: apnsAuth(options.config, options.identity),
    pushType: options.config.pushType,
    ...(options.config.priority ? { priority: options.config.priority } : {}),
    maxConcurrentStreams: options.config.maxConcurrentStreams,
    clock: options.clock,
    log,
    ...(options.ca ? { ca: options.ca } : {}),
  });
  const worker = startPushWorker({
    repositories: options.repositories,
    send: (pushToken, topic) => client.send(pushToken, topic),
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
      await client.close();
    },
  };
}
