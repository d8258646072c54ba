/*
 * Passes, their versions and their signed bundles. A change of a pass writes its new version, its bundle and its
 * outbox rows in one transaction (Repositories.inTransaction: PassesInTransaction below); the lookups of every Wallet
 * request go straight to the driver as prepared statements.
 */

import type { Prisma } from './generated/client.js';
import type { PreparedStatement, PrismaClient, SqlQuery } from './sql.js';
import { isUniqueViolation } from './unique-violation.js';

/** A JSON object as stored in a jsonb column; the passes service knows what its keys mean. */
export type JsonObject = Record<string, unknown>;

export interface PassKey {
  passTypeIdentifier: string;
  serialNumber: string;
}

/** What a change reads of a pass: its key, token and content, and the version that content is. */
export interface PassContentRecord extends PassKey {
  id: bigint;
  authenticationToken: string;
  template: string;
  /** The uploaded template version it is built from; null for a MODELS_DIR template. */
  templateVersion: number | null;
  fields: JsonObject;
  overrides: JsonObject;
  changeMessages: JsonObject;
  strings: JsonObject;
  version: number;
}

export interface PassRecord extends PassContentRecord {
  lastModified: Date;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewPassRecord extends PassKey {
  authenticationToken: string;
  template: string;
  templateVersion: number | null;
  fields: JsonObject;
  overrides: JsonObject;
  changeMessages: JsonObject;
  strings: JsonObject;
  lastModified: Date;
  /** The signed bundle of version 1, stored with the pass. */
  bytes: Buffer;
}

export interface PassSummary {
  /** Devices registered for the pass's updates. */
  registeredDevices: number;
  /** The file names of the pass's own images, sorted (not their bytes). */
  images: string[];
}

/** What Wallet's authenticated requests check of a pass: its token, and which version is current. */
export interface PassCredentials {
  id: bigint;
  /** The pass's authenticationToken, as bytes for tokenMatches. */
  authenticationToken: Buffer;
  version: number;
  lastModified: Date;
  /** lastModified as an HTTP date, as Last-Modified sends it and If-Modified-Since brings it back. */
  lastModifiedHttp: string;
}

export interface NewVersion {
  id: bigint;
  templateVersion: number | null;
  fields: JsonObject;
  overrides: JsonObject;
  changeMessages: JsonObject;
  strings: JsonObject;
}

/** Bundle file name → bytes: a pass's own images. */
export type ImageFiles = Record<string, Buffer>;

/** A change of a pass's own images: new bytes for a name, or null to drop the pass's image of that name. */
export type ImageChanges = Record<string, Buffer | null>;

export interface StoredBundle {
  passId: bigint;
  version: number;
  bytes: Buffer;
}

/** The statements of a change, in the change's transaction. */
export interface PassesInTransaction {
  /** The pass, locked (FOR UPDATE) until the transaction ends; undefined when there is none. */
  lockForChange(key: PassKey): Promise<PassRecord | undefined>;
  /** The passes' current versions, locked in id order (two changes over the same passes cannot deadlock). */
  lockVersions(ids: readonly bigint[]): Promise<Map<bigint, number>>;
  /** The content of passes (locked by the caller), to merge a change into again. */
  readContents(ids: readonly bigint[]): Promise<PassContentRecord[]>;
  findById(id: bigint): Promise<PassRecord | undefined>;
  /**
   * Makes the new version of each pass (locked by the caller), in one statement: its content, version + 1, a
   * Last-Modified that is second-granular and strictly increasing, and update_xid for lastUpdated tags.
   */
  writeNewVersions(passes: readonly NewVersion[], now: Date): Promise<Array<{ id: bigint; version: number }>>;
  /** Stores bundles, each the newest version's: an older one never replaces a newer one signed concurrently. */
  storeBundles(bundles: readonly StoredBundle[], now: Date): Promise<void>;
  /** The passes' own images, by pass id (a pass without any is left out). */
  readImages(ids: readonly bigint[]): Promise<Map<bigint, ImageFiles>>;
  /** Stores or drops images of a pass (locked by the caller). */
  writeImages(passId: bigint, changes: ImageChanges, now: Date): Promise<void>;
}

export interface PassesRepository extends Pick<PassesInTransaction, 'storeBundles' | 'readImages'> {
  /** Stores a pass with its first bundle; undefined when a pass with its serial number exists. */
  create(pass: NewPassRecord): Promise<PassRecord | undefined>;
  find(key: PassKey): Promise<PassRecord | undefined>;
  /** Deletes the pass (its registrations and bundle with it); false when there was none. */
  delete(key: PassKey): Promise<boolean>;
  /** Passes in creation order (id), after the id `after` when given. */
  list(query: {
    template?: string | undefined;
    after?: bigint | undefined;
    take: number;
  }): Promise<PassRecord[]>;
  /** One of the pass's own images; undefined when it has none of that name. */
  findImage(passId: bigint, name: string): Promise<Buffer | undefined>;
  /** What the admin API shows of each pass besides its row, for a page of passes in one statement. */
  summaries(ids: readonly bigint[]): Promise<Map<bigint, PassSummary>>;
  /** The stored bundle of the pass, whatever its version. */
  findBundle(passId: bigint): Promise<{ version: number; bytes: Buffer } | undefined>;
  /** The few columns authentication needs, in one indexed lookup (a prepared statement: Wallet's requests run it). */
  readCredentials(key: PassKey): Promise<PassCredentials | undefined>;
}

type PassRow = Prisma.PassGetPayload<object>;

function fromPrisma(row: PassRow): PassRecord {
  return {
    id: row.id,
    passTypeIdentifier: row.passTypeIdentifier,
    serialNumber: row.serialNumber,
    authenticationToken: row.authenticationToken,
    template: row.template,
    templateVersion: row.templateVersion,
    fields: row.fields as JsonObject,
    overrides: row.overrides as JsonObject,
    changeMessages: row.changeMessages as JsonObject,
    strings: row.strings as JsonObject,
    version: row.version,
    lastModified: row.lastModified,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

// The id as text: each driver (and Prisma) gives int8 as a type of its own. Shared with the bulk page reads.
export const CONTENT_COLUMNS = `p.id::text AS id, p.pass_type_identifier, p.serial_number, p.authentication_token,
  p.template, p.template_version, p.fields, p.overrides, p.change_messages, p.strings, p.version`;
const PASS_COLUMNS = `${CONTENT_COLUMNS}, p.last_modified, p.created_at, p.updated_at`;

export interface ContentRow extends Record<string, unknown> {
  id: string;
  pass_type_identifier: string;
  serial_number: string;
  authentication_token: string;
  template: string;
  template_version: number | null;
  fields: JsonObject;
  overrides: JsonObject;
  change_messages: JsonObject;
  strings: JsonObject;
  version: number;
}

interface DriverPassRow extends ContentRow {
  last_modified: Date;
  created_at: Date;
  updated_at: Date;
}

export function contentFromRow(row: ContentRow): PassContentRecord {
  return {
    id: BigInt(row.id),
    passTypeIdentifier: row.pass_type_identifier,
    serialNumber: row.serial_number,
    authenticationToken: row.authentication_token,
    template: row.template,
    templateVersion: row.template_version,
    fields: row.fields,
    overrides: row.overrides,
    changeMessages: row.change_messages,
    strings: row.strings,
    version: row.version,
  };
}

const fromDriver = (row: DriverPassRow): PassRecord => ({
  ...contentFromRow(row),
  lastModified: row.last_modified,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** The statements of a change, on the transaction's connection. */
export function passesInTransaction(query: SqlQuery): PassesInTransaction {
  return {
    async lockForChange(key) {
      const [row] = await query<DriverPassRow>(
        `SELECT ${PASS_COLUMNS} FROM passes p
        WHERE p.pass_type_identifier = $1 AND p.serial_number = $2
        FOR UPDATE`,
        [key.passTypeIdentifier, key.serialNumber],
      );
      return row ? fromDriver(row) : undefined;
    },
    async lockVersions(ids) {
      const locked = await query<{ id: string; version: number }>(
        'SELECT id::text AS id, version FROM passes WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE',
        [ids.map(String)],
      );
      return new Map(locked.map((row) => [BigInt(row.id), row.version]));
    },
    async readContents(ids) {
      const rows = await query<ContentRow>(
        `SELECT ${CONTENT_COLUMNS} FROM passes p WHERE p.id = ANY($1::bigint[])`,
        [ids.map(String)],
      );
      return rows.map(contentFromRow);
    },
    async findById(id) {
      const [row] = await query<DriverPassRow>(
        `SELECT ${PASS_COLUMNS} FROM passes p WHERE p.id = $1::bigint`,
        [id.toString()],
      );
      return row ? fromDriver(row) : undefined;
    },
    writeNewVersions: (passes, now) => writeNewVersions(query, passes, now),
    storeBundles: (bundles, now) => storeBundles(query, bundles, now),
    readImages: (ids) => readImages(query, ids),
    async writeImages(passId, changes, now) {
      for (const [name, bytes] of Object.entries(changes)) {
        if (bytes === null) {
          await query('DELETE FROM pass_images WHERE pass_id = $1::bigint AND name = $2', [
            passId.toString(),
            name,
          ]);
          continue;
        }
        // A Buffer parameter goes to PostgreSQL as binary bytea (see storeBundles).
        await query(
          `INSERT INTO pass_images (pass_id, name, bytes, updated_at) VALUES ($1::bigint, $2, $3::bytea, $4::timestamptz)
          ON CONFLICT (pass_id, name) DO UPDATE SET bytes = EXCLUDED.bytes, updated_at = EXCLUDED.updated_at`,
          [passId.toString(), name, bytes, now],
        );
      }
    },
  };
}

async function readImages(query: SqlQuery, ids: readonly bigint[]): Promise<Map<bigint, ImageFiles>> {
  const images = new Map<bigint, ImageFiles>();
  if (ids.length === 0) return images;
  const rows = await query<{ pass_id: string; name: string; bytes: Uint8Array }>(
    'SELECT pass_id::text AS pass_id, name, bytes FROM pass_images WHERE pass_id = ANY($1::bigint[])',
    [ids.map(String)],
  );
  for (const row of rows) {
    const id = BigInt(row.pass_id);
    const files = images.get(id) ?? {};
    files[row.name] = Buffer.from(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength);
    images.set(id, files);
  }
  return images;
}

async function writeNewVersions(
  query: SqlQuery,
  passes: readonly NewVersion[],
  now: Date,
): Promise<Array<{ id: bigint; version: number }>> {
  // One JSON parameter whatever the number of passes (ids as strings: JSON numbers cannot carry every bigint).
  const rows = JSON.stringify(
    passes.map((pass) => ({
      id: pass.id.toString(),
      template_version: pass.templateVersion,
      fields: pass.fields,
      overrides: pass.overrides,
      change_messages: pass.changeMessages,
      strings: pass.strings,
    })),
  );
  // HTTP dates have whole seconds, and If-Modified-Since must see every change: Last-Modified is second-granular
  // and strictly increasing. update_xid is what lastUpdated tags compare with (src/passes/versions.ts).
  const written = await query<{ id: string; version: number }>(
    `UPDATE passes SET
      template_version = c.template_version,
      fields = c.fields,
      overrides = c.overrides,
      change_messages = c.change_messages,
      strings = c.strings,
      version = passes.version + 1,
      last_modified = GREATEST(date_trunc('second', $1::timestamptz), passes.last_modified + interval '1 second'),
      update_xid = pg_current_xact_id()::text::bigint,
      updated_at = $1::timestamptz
    FROM jsonb_to_recordset($2::jsonb) AS c(id bigint, template_version int, fields jsonb, overrides jsonb, change_messages jsonb, strings jsonb)
    WHERE passes.id = c.id
    RETURNING passes.id::text AS id, passes.version`,
    [now, rows],
  );
  return written.map((row) => ({ id: BigInt(row.id), version: row.version }));
}

async function storeBundles(query: SqlQuery, bundles: readonly StoredBundle[], now: Date): Promise<void> {
  if (bundles.length === 0) return;
  // Each bundle its own parameter (not one array or JSON of them): pg sends a Buffer parameter as binary bytea.
  const params: unknown[] = [now];
  const rows = bundles.map((bundle) => {
    params.push(bundle.passId.toString(), bundle.version, bundle.bytes);
    const n = params.length;
    return `($${n - 2}::bigint, $${n - 1}::int, $${n}::bytea, $1::timestamptz)`;
  });
  await query(
    `INSERT INTO pass_bundles (pass_id, version, bytes, signed_at)
    VALUES ${rows.join(', ')}
    ON CONFLICT (pass_id) DO UPDATE SET version = EXCLUDED.version, bytes = EXCLUDED.bytes, signed_at = EXCLUDED.signed_at
    WHERE pass_bundles.version < EXCLUDED.version`,
    params,
  );
}

const readPassCredentialsStatement: PreparedStatement = {
  name: 'read-pass-credentials',
  text: `SELECT id::text AS id, authentication_token, version, last_modified FROM passes
     WHERE pass_type_identifier = $1 AND serial_number = $2`,
};

export function createPassesRepository(db: { prisma: PrismaClient; query: SqlQuery }): PassesRepository {
  const { prisma, query } = db;
  return {
    async create(pass) {
      const { bytes, ...columns } = pass;
      try {
        const row = await prisma.pass.create({
          data: {
            ...columns,
            fields: columns.fields as Prisma.InputJsonObject,
            overrides: columns.overrides as Prisma.InputJsonObject,
            changeMessages: columns.changeMessages as Prisma.InputJsonObject,
            strings: columns.strings as Prisma.InputJsonObject,
            bundle: { create: { version: 1, bytes: new Uint8Array(bytes) } },
          },
        });
        return fromPrisma(row);
      } catch (error) {
        if (isUniqueViolation(error)) return undefined;
        throw error;
      }
    },
    async find(key) {
      const row = await prisma.pass.findUnique({ where: { passTypeIdentifier_serialNumber: key } });
      return row ? fromPrisma(row) : undefined;
    },
    async delete(key) {
      const { count } = await prisma.pass.deleteMany({ where: key });
      return count > 0;
    },
    async list({ template, after, take }) {
      const rows = await prisma.pass.findMany({
        where: { ...(template ? { template } : {}), ...(after ? { id: { gt: after } } : {}) },
        orderBy: { id: 'asc' },
        take,
      });
      return rows.map(fromPrisma);
    },
    async findImage(passId, name) {
      const row = await prisma.passImage.findUnique({ where: { passId_name: { passId, name } } });
      return row ? Buffer.from(row.bytes) : undefined;
    },
    async summaries(ids) {
      const summaries = new Map<bigint, PassSummary>();
      if (ids.length === 0) return summaries;
      const rows = await query<{ id: string; registered_devices: number; images: string[] }>(
        `SELECT p.id::text AS id,
          (SELECT count(*)::int FROM registrations r WHERE r.pass_id = p.id) AS registered_devices,
          ARRAY(SELECT i.name FROM pass_images i WHERE i.pass_id = p.id ORDER BY i.name) AS images
        FROM passes p WHERE p.id = ANY($1::bigint[])`,
        [ids.map(String)],
      );
      for (const row of rows) {
        summaries.set(BigInt(row.id), { registeredDevices: row.registered_devices, images: row.images });
      }
      return summaries;
    },
    async findBundle(passId) {
      const row = await prisma.passBundle.findUnique({ where: { passId } });
      return row ? { version: row.version, bytes: Buffer.from(row.bytes) } : undefined;
    },
    storeBundles: (bundles, now) => storeBundles(query, bundles, now),
    readImages: (ids) => readImages(query, ids),
    async readCredentials(key) {
      const [row] = await query<{
        id: string;
        authentication_token: string;
        version: number;
        last_modified: Date;
      }>(readPassCredentialsStatement, [key.passTypeIdentifier, key.serialNumber]);
      if (!row) return undefined;
      return {
        id: BigInt(row.id),
        authenticationToken: Buffer.from(row.authentication_token),
        version: row.version,
        lastModified: row.last_modified,
        lastModifiedHttp: row.last_modified.toUTCString(),
      };
    },
  };
}
