/*
 * Devices and their registrations for passes (Apple's device ↔ pass mapping), and the list of updatable passes.
 * Register and list run on every Wallet request: they go straight to the driver as prepared statements.
 */
import type { PreparedStatement, PrismaClient, SqlQuery } from './sql.js';

/**
 * The statement register runs, with its parameters in order: pass type, serial, token, device library
 * identifier, push token, time. Exported for bench/device-endpoints.ts, which runs the same statement through bare
 * `pg`. Prepared: see PreparedStatement.
 *
 * The token is compared as SHA-256 digests: the comparison's time can only tell an attacker about a digest, not
 * about the token (the same reason secretsEqual compares in constant time). Nothing is written unless it matches.
 *
 * The push token is stored on the registration: Apple's register request carries it per pass, and a
 * re-registration of the pass with a new one replaces it. A registration of another pass under the same device
 * library identifier leaves it alone, so it cannot redirect this pass's pushes. devices.push_token is written only
 * for servers of the previous release during a rolling upgrade (see the migration registration_push_tokens).
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
    INSERT INTO registrations (device_id, pass_id, push_token, registered_at)
    SELECT device.id, pass.id, $5, $6::timestamptz FROM device, pass
    ON CONFLICT (device_id, pass_id)
      DO UPDATE SET push_token = EXCLUDED.push_token, registered_at = EXCLUDED.registered_at
    RETURNING (xmax = 0) AS created
  )
  SELECT EXISTS (SELECT 1 FROM pass) AS authenticated, coalesce((SELECT created FROM registration), false) AS created`,
};

/** listUpdatable's statement (device library identifier, pass type, tag); bench/device-endpoints.ts runs it too. */
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

export interface Registration {
  passTypeIdentifier: string;
  serialNumber: string;
  /** From `Authorization: ApplePass <authenticationToken>`: nothing is written unless it is the pass's. */
  authenticationToken: string;
  deviceLibraryIdentifier: string;
  pushToken: string;
  registeredAt: Date;
}

export interface RemovedRegistrations {
  registrations: number;
  devices: number;
}

export interface RegistrationsRepository {
  /**
   * Creates the device if needed and the registration with its push token (or stores the registration's new push
   * token), in one statement, if the token is the pass's. Undefined when the pass is unknown or the token wrong,
   * else whether the registration is new.
   */
  register(registration: Registration): Promise<{ created: boolean } | undefined>;
  /** Removes the device ↔ pass mapping, then the device if it has no registrations left. */
  unregister(deviceLibraryIdentifier: string, passId: bigint): Promise<void>;
  /**
   * The serial numbers of the passes of one type registered to the device and changed since the tag (all of them
   * without a tag), each row with the list statement's snapshot as the next tag.
   */
  listUpdatable(
    deviceLibraryIdentifier: string,
    passTypeIdentifier: string,
    passesUpdatedSince: string | undefined,
  ): Promise<Array<{ serialNumber: string; tag: string }>>;
  /**
   * APNs said the push token is no longer active for the topic (410 Unregistered, or 400 BadDeviceToken): removes
   * the registrations made with that token for passes of that pass type (a registration of the same device with
   * another token stays), then the devices left without registrations
   * (Apple: a device with no registered passes is forgotten). Apple's 410 carries the time APNs learned the token
   * was invalid; a registration made after it (registered_at > unregisteredAt) is newer news and is kept.
   */
  removeUnregisteredToken(
    pushToken: string,
    passTypeIdentifier: string,
    unregisteredAt: Date,
  ): Promise<RemovedRegistrations>;
}

export function createRegistrationsRepository(db: {
  prisma: PrismaClient;
  query: SqlQuery;
}): RegistrationsRepository {
  const { prisma, query } = db;
  return {
    async register(registration) {
      const [row] = await query<{ authenticated: boolean; created: boolean }>(registerDeviceStatement, [
        registration.passTypeIdentifier,
        registration.serialNumber,
        registration.authenticationToken,
        registration.deviceLibraryIdentifier,
        registration.pushToken,
        registration.registeredAt,
      ]);
      return row?.authenticated ? { created: row.created } : undefined;
    },

    // The device row is locked first: a registration of the same device committing meanwhile is then seen, not
    // deleted with it.
    async unregister(deviceLibraryIdentifier, passId) {
      await prisma.$transaction(async (tx) => {
        const [device] = await tx.$queryRaw<Array<{ id: bigint }>>`
          SELECT id FROM devices WHERE device_library_identifier = ${deviceLibraryIdentifier} FOR UPDATE`;
        if (!device) return;
        await tx.$executeRaw`DELETE FROM registrations WHERE device_id = ${device.id} AND pass_id = ${passId}`;
        await tx.$executeRaw`
          DELETE FROM devices d WHERE d.id = ${device.id}
          AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.device_id = d.id)`;
      });
    },

    async listUpdatable(deviceLibraryIdentifier, passTypeIdentifier, passesUpdatedSince) {
      const rows = await query<{ serial_number: string; tag: string }>(listUpdatableStatement, [
        deviceLibraryIdentifier,
        passTypeIdentifier,
        passesUpdatedSince ?? null,
      ]);
      return rows.map((row) => ({ serialNumber: row.serial_number, tag: row.tag }));
    },

    // The devices are locked first, so a registration committing meanwhile is seen and its device is not deleted.
    removeUnregisteredToken: (pushToken, passTypeIdentifier, unregisteredAt) =>
      prisma.$transaction(async (tx) => {
        await tx.$queryRaw`
          SELECT id FROM devices
          WHERE id IN (SELECT device_id FROM registrations WHERE push_token = ${pushToken})
          ORDER BY id FOR UPDATE`;
        const removed = await tx.$queryRaw<Array<{ device_id: bigint }>>`
          DELETE FROM registrations r USING passes p
          WHERE r.pass_id = p.id
            AND r.push_token = ${pushToken} AND p.pass_type_identifier = ${passTypeIdentifier}
            AND r.registered_at <= ${unregisteredAt}::timestamptz
          RETURNING r.device_id`;
        const deviceIds = [...new Set(removed.map((row) => row.device_id))];
        if (deviceIds.length === 0) return { registrations: 0, devices: 0 };
        // A separate statement: one statement does not see its own CTE's deletions.
        const devices = await tx.$executeRaw`
          DELETE FROM devices d WHERE d.id = ANY(${deviceIds}::bigint[])
            AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.device_id = d.id)`;
        return { registrations: removed.length, devices };
      }),
  };
}
