import type { Clock } from '../clock.js';
import type { PreparedStatement, PrismaClient, SqlQuery } from '../db/database.js';
import type { PassKey } from '../passes/passes.js';
import type { AuthenticatedPass } from './authentication.js';

export interface WalletDeps {
  prisma: PrismaClient;
  /** The driver itself, for the statements every device runs (register, list): see SqlQuery. */
  query: SqlQuery;
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
 * The statement registerDevice runs, with its parameters in order: pass type, serial, token, device library
 * identifier, push token, time. Exported for bench/device-endpoints.ts, which runs the same statement through bare
 * `pg`. Prepared: see PreparedStatement.
 *
 * The token is compared as SHA-256 digests: the comparison's time can only tell an attacker about a digest, not
 * about the token (the same reason secretsEqual compares in constant time). Nothing is written unless it matches.
 */
export const registerDeviceStatement: PreparedStatement = {
  name: 'register-device',
  text: `
  WITH pass AS (
    SELECT id FROM passes
    WHERE pass_type_identifier = $1 AND serial_number = $2
      AND sha256(convert_to(authentication_token, 'UTF8')) = sha256(convert_to($3, 'UTF8'))
  ), device AS (
    INSERT INTO devices (device_library_identifier, push_token, created_at, updated_at)
    SELECT $4, $5, $6::timestamptz, $6::timestamptz WHERE EXISTS (SELECT 1 FROM pass)
    ON CONFLICT (device_library_identifier)
      DO UPDATE SET push_token = EXCLUDED.push_token, updated_at = EXCLUDED.updated_at
    RETURNING id
  ), registration AS (
    INSERT INTO registrations (device_id, pass_id, registered_at)
    SELECT device.id, pass.id, $6::timestamptz FROM device, pass
    ON CONFLICT (device_id, pass_id) DO UPDATE SET registered_at = EXCLUDED.registered_at
    RETURNING (xmax = 0) AS created
  )
  SELECT EXISTS (SELECT 1 FROM pass) AS authenticated, coalesce((SELECT created FROM registration), false) AS created`,
};

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
  const now = deps.clock.now();
  const [row] = await deps.query<{ authenticated: boolean; created: boolean }>(registerDeviceStatement, [
    request.key.passTypeIdentifier,
    request.key.serialNumber,
    request.authenticationToken,
    request.deviceLibraryIdentifier,
    request.pushToken,
    now,
  ]);
  return row?.authenticated ? { created: row.created } : undefined;
}

/**
 * Removes the device ↔ pass mapping, then the device if it has no registrations left (Apple's rule). The device
 * row is locked first: a registration of the same device committing meanwhile is then seen, not deleted with it.
 */
export async function unregisterDevice(
  deps: WalletDeps,
  deviceLibraryIdentifier: string,
  pass: Pick<AuthenticatedPass, 'id'>,
) {
  await deps.prisma.$transaction(async (tx) => {
    const [device] = await tx.$queryRaw<Array<{ id: bigint }>>`
      SELECT id FROM devices WHERE device_library_identifier = ${deviceLibraryIdentifier} FOR UPDATE`;
    if (!device) return;
    await tx.$executeRaw`DELETE FROM registrations WHERE device_id = ${device.id} AND pass_id = ${pass.id}`;
    await tx.$executeRaw`
      DELETE FROM devices d WHERE d.id = ${device.id}
      AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.device_id = d.id)`;
  });
}

export interface UpdatablePasses {
  serialNumbers: string[];
  lastUpdated: string;
}

/** listUpdatablePasses' statement (device library identifier, pass type, tag); bench/device-endpoints.ts runs it too. */
export const listUpdatableStatement: PreparedStatement = {
  name: 'list-updatable-passes',
  text: `
  SELECT p.serial_number, pg_current_snapshot()::text AS tag
  FROM devices d
  JOIN registrations r ON r.device_id = d.id
  JOIN passes p ON p.id = r.pass_id
  WHERE d.device_library_identifier = $1
    AND p.pass_type_identifier = $2
    AND ($3::text IS NULL OR NOT pg_visible_in_snapshot(p.update_xid::text::xid8, $3::text::pg_snapshot))
  ORDER BY p.serial_number`,
};

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
  const rows = await deps.query<{ serial_number: string; tag: string }>(listUpdatableStatement, [
    deviceLibraryIdentifier,
    passTypeIdentifier,
    passesUpdatedSince ?? null,
  ]);
  const first = rows[0];
  if (!first) return undefined;
  return { serialNumbers: rows.map((row) => row.serial_number), lastUpdated: first.tag };
}

/** Apple's POST /v1/log: messages Wallet sends when something goes wrong with a pass or the web service. */
export async function storeDeviceLogs(deps: WalletDeps, messages: string[]) {
  const createdAt = deps.clock.now();
  await deps.prisma.deviceLog.createMany({ data: messages.map((message) => ({ message, createdAt })) });
}
