import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateProviderKey, type MockApns, startMockApns } from './mock-apns.js';

/*
 * For tests of the server process: a mock APNs with provider-token auth, and the environment that points the
 * server at it (a .p8 key file, the mock's CA through NODE_EXTRA_CA_CERTS).
 */
export interface TokenAuthApns {
  mock: MockApns;
  /** The .p8 key's PEM, as written to APNS_KEY_FILE. */
  keyPem: string;
  env: Record<string, string>;
}

/** The team of the development signing identity: the provider token's `iss` defaults to it. */
const DEV_TEAM_ID = 'DEVTEAM000';

export async function startTokenAuthApns(keyId = 'KEY1234567'): Promise<TokenAuthApns> {
  const key = generateProviderKey();
  const mock = await startMockApns({ publicKeyPem: key.publicKeyPem, keyId, teamId: DEV_TEAM_ID });
  const dir = await mkdtemp(join(tmpdir(), 'pks-apns-'));
  await writeFile(join(dir, 'apns.p8'), key.keyPem, { mode: 0o600 });
  await writeFile(join(dir, 'mock-ca.pem'), mock.caPem);
  return {
    mock,
    keyPem: key.keyPem,
    env: {
      APNS_ORIGIN: mock.origin,
      APNS_KEY_FILE: join(dir, 'apns.p8'),
      APNS_KEY_ID: keyId,
      NODE_EXTRA_CA_CERTS: join(dir, 'mock-ca.pem'),
    },
  };
}
