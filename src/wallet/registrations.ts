import type { Clock } from '../clock.js';
import type { PrismaClient } from '../db/database.js';
import type { StoredPass } from '../passes/passes.js';

export interface WalletDeps {
  prisma: PrismaClient;
  clock: Clock;
}

/**
 * Registers a device for update notifications of a pass (Apple: create the device if needed, store the
 * device ↔ pass mapping). Returns whether the registration is new (201) or existed (200). A changed push token
 * is stored either way. One statement, so concurrent registrations of one device cannot collide.
 */
export async function registerDevice(
  deps: WalletDeps,
  deviceLibraryIdentifier: string,
  pushToken: string,
  pass: StoredPass,
): Promise<{ created: boolean }> {
  const now = deps.clock.now();
  const [row] = await deps.prisma.$queryRaw<Array<{ created: boolean }>>`
    WITH device AS (
      INSERT INTO devices (device_library_identifier, push_token, created_at, updated_at)
      VALUES (${deviceLibraryIdentifier}, ${pushToken}, ${now}::timestamptz, ${now}::timestamptz)
      ON CONFLICT (device_library_identifier)
        DO UPDATE SET push_token = EXCLUDED.push_token, updated_at = EXCLUDED.updated_at
      RETURNING id
    )
    INSERT INTO registrations (device_id, pass_id, registered_at)
    SELECT id, ${pass.id}, ${now}::timestamptz FROM device
    ON CONFLICT (device_id, pass_id) DO UPDATE SET registered_at = EXCLUDED.registered_at
    RETURNING (xmax = 0) AS created`;
  return { created: row?.created ?? false };
}

/**
 * Removes the device ↔ pass mapping, then the device if it has no registrations left (Apple's rule). The device
 * row is locked first: a registration of the same device committing meanwhile is then seen, not deleted with it.
 */
export async function unregisterDevice(deps: WalletDeps, deviceLibraryIdentifier: string, pass: StoredPass) {
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

/**
 * The serial numbers of the passes of one type registered to the device and changed since the tag (all of them
 * without a tag), and the next tag. See versions.ts for why the tag is a snapshot's xmin. Undefined when none.
 */
export async function listUpdatablePasses(
  deps: WalletDeps,
  deviceLibraryIdentifier: string,
  passTypeIdentifier: string,
  passesUpdatedSince: bigint | undefined,
): Promise<UpdatablePasses | undefined> {
  const rows = await deps.prisma.$queryRaw<Array<{ serial_number: string; tag: string }>>`
    SELECT p.serial_number, pg_snapshot_xmin(pg_current_snapshot())::text AS tag
    FROM devices d
    JOIN registrations r ON r.device_id = d.id
    JOIN passes p ON p.id = r.pass_id
    WHERE d.device_library_identifier = ${deviceLibraryIdentifier}
      AND p.pass_type_identifier = ${passTypeIdentifier}
      AND p.update_xid >= ${passesUpdatedSince ?? 0n}
    ORDER BY p.serial_number`;
  const first = rows[0];
  if (!first) return undefined;
  return { serialNumbers: rows.map((row) => row.serial_number), lastUpdated: first.tag };
}

/** Apple's POST /v1/log: messages Wallet sends when something goes wrong with a pass or the web service. */
export async function storeDeviceLogs(deps: WalletDeps, messages: string[]) {
  const createdAt = deps.clock.now();
  await deps.prisma.deviceLog.createMany({ data: messages.map((message) => ({ message, createdAt })) });
}
