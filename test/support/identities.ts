import pino from 'pino';
import type { Clock } from '../../src/clock.js';
import type { Repositories } from '../../src/db/repositories.js';
import type { Logger } from '../../src/logger.js';
import { createIdentities, type Identities } from '../../src/signing/identities.js';
import type { SigningIdentity } from '../../src/signing/identity.js';

/** IDENTITY_ENCRYPTION_KEY of the test servers: 32 bytes, as the configuration takes it. */
export const TEST_IDENTITY_ENCRYPTION_KEY = Buffer.alloc(32, 7);

/** The identities as src/server.ts makes them: the configured one and the database's, loaded. */
export async function loadTestIdentities(
  configured: SigningIdentity,
  repositories: Pick<Repositories, 'identities'>,
  options: {
    clock?: Clock;
    log?: Logger;
    encryptionKey?: Buffer | undefined;
    refreshIntervalMs?: number;
  } = {},
): Promise<Identities> {
  const identities = createIdentities({
    configured: [configured],
    repository: repositories.identities,
    encryptionKey: 'encryptionKey' in options ? options.encryptionKey : TEST_IDENTITY_ENCRYPTION_KEY,
    production: false,
    clock: options.clock ?? { now: () => new Date() },
    log: options.log ?? pino({ level: 'silent' }),
    ...(options.refreshIntervalMs ? { refreshIntervalMs: options.refreshIntervalMs } : {}),
  });
  await identities.load();
  return identities;
}
