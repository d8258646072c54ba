import type { Clock } from '../clock.js';
import type { Repositories } from '../db/repositories.js';
import type { PassKey } from '../passes/passes.js';
import type { AuthenticatedPass } from './authentication.js';

export interface WalletDeps {
  repositories: Pick<Repositories, 'registrations' | 'deviceLogs'>;
  clock: Clock;
}

/** Registers a device (see registerDevice) for the pass given by key, if the token is the pass's. */
export interface RegistrationRequest {
  deviceLibraryIdentifier: string;
  pushToken: string;
  key: PassKey;
  /** From `Authorization: ApplePass <authenticationToken>`. */
  authenticationToken: string;
}

/**
 * Registers a device for update notifications of a pass (Apple: create the device if needed, store the
 * device ↔ pass mapping), after checking the pass's token, in ONE statement and round trip: it runs for every
 * pass on every device, and again whenever Wallet re-registers. Returns undefined when the pass is unknown or the
 * token wrong (401), else whether the registration is new (201) or existed (200). A changed push token is stored
 * either way. One statement, so concurrent registrations of one device cannot collide.
 */
export async function registerDevice(
  deps: WalletDeps,
  request: RegistrationRequest,
): Promise<{ created: boolean } | undefined> {
  return deps.repositories.registrations.register({
    passTypeIdentifier: request.key.passTypeIdentifier,
    serialNumber: request.key.serialNumber,
    authenticationToken: request.authenticationToken,
    deviceLibraryIdentifier: request.deviceLibraryIdentifier,
    pushToken: request.pushToken,
    registeredAt: deps.clock.now(),
  });
}

/** Removes the device ↔ pass mapping, then the device if it has no registrations left (Apple's rule). */
export async function unregisterDevice(
  deps: WalletDeps,
  deviceLibraryIdentifier: string,
  pass: Pick<AuthenticatedPass, 'id'>,
) {
  await deps.repositories.registrations.unregister(deviceLibraryIdentifier, pass.id);
}

export interface UpdatablePasses {
  serialNumbers: string[];
  lastUpdated: string;
}

/**
 * The serial numbers of the passes of one type registered to the device and changed since the tag (all of them
 * without a tag), and the next tag. See versions.ts for why the tag is the list query's snapshot. Undefined when
 * none.
 */
export async function listUpdatablePasses(
  deps: WalletDeps,
  deviceLibraryIdentifier: string,
  passTypeIdentifier: string,
  passesUpdatedSince: string | undefined,
): Promise<UpdatablePasses | undefined> {
  const rows = await deps.repositories.registrations.listUpdatable(
    deviceLibraryIdentifier,
    passTypeIdentifier,
    passesUpdatedSince,
  );
  const first = rows[0];
  if (!first) return undefined;
  return { serialNumbers: rows.map((row) => row.serialNumber), lastUpdated: first.tag };
}

/** Apple's POST /v1/log: messages Wallet sends when something goes wrong with a pass or the web service. */
export async function storeDeviceLogs(deps: WalletDeps, messages: string[]) {
  await deps.repositories.deviceLogs.store(messages, deps.clock.now());
}
