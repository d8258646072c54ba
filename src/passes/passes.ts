import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { type PreparedStatement, type PrismaClient, type SqlQuery, sqlText } from '../db/database.js';
import { Prisma } from '../db/generated/client.js';
import { ConflictError, InvalidError, NotFoundError } from '../errors.js';
import type { PassContent } from '../signing/bundle.js';
import type { SigningIdentity } from '../signing/identity.js';
import type { Signer } from '../signing/signer.js';
import type { BundleCache } from './bundle-cache.js';
import { type ChangeMessages, checkFieldKeys, type FieldValues, type PassOverrides } from './pass-content.js';
import type { Template } from './templates.js';
import { newAuthenticationToken } from './tokens.js';
import { truncateToSecond } from './versions.js';

/** What the passes service needs from the outside: one database handle, the templates and the signer. */
export interface PassesDeps {
  prisma: PrismaClient;
  templates: ReadonlyMap<string, Template>;
  identity: SigningIdentity;
  /** Signs bundles off the event loop (src/signing/signer.ts); made once by the process. */
  signer: Signer;
  clock: Clock;
  /** PUBLIC_URL: becomes webServiceURL in every pass. */
  webServiceURL: string;
  /** Called after a change has committed its outbox rows, so the push worker sends them at once. */
  afterChange?: () => void;
  /** Told how long each signing took, in seconds (the metrics' signing histogram). */
  observeSigning?: (seconds: number) => void;
  /** Told whether getSignedBundle found the current version stored (the metrics' cache hits and misses). */
  observeBundleCache?: (result: 'hit' | 'miss') => void;
  /** Bundles in this process's memory, by pass id and version (src/passes/bundle-cache.ts); the database otherwise. */
  bundleCache?: BundleCache;
}

export interface PassKey {
  passTypeIdentifier: string;
  serialNumber: string;
}

export interface StoredPass extends PassKey {
  id: bigint;
  authenticationToken: string;
  template: string;
  fields: FieldValues;
  overrides: PassOverrides;
  changeMessages: ChangeMessages;
  version: number;
  lastModified: Date;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewPass {
  template: string;
  serialNumber?: string | undefined;
  fields?: FieldValues | undefined;
  pass?: PassOverrides | undefined;
}

export interface PassChange {
  fields?: FieldValues | undefined;
  pass?: PassOverrides | undefined;
  changeMessages?: ChangeMessages | undefined;
}

type PassRow = Prisma.PassGetPayload<object>;

function toStoredPass(row: PassRow): StoredPass {
  return {
    ...row,
    fields: row.fields as FieldValues,
    overrides: row.overrides as PassOverrides,
    changeMessages: row.changeMessages as ChangeMessages,
  };
}

function findTemplate(deps: PassesDeps, name: string): Template {
  const template = deps.templates.get(name);
  if (!template) {
    const known = [...deps.templates.keys()].join(', ');
    throw new InvalidError(`Unknown template "${name}"; known templates: ${known || 'none'}`);
  }
  return template;
}

function passContent(
  deps: PassesDeps,
  pass: Omit<StoredPass, 'id' | 'version' | 'lastModified' | 'createdAt' | 'updatedAt'>,
): PassContent {
  return {
    template: findTemplate(deps, pass.template),
    serialNumber: pass.serialNumber,
    authenticationToken: pass.authenticationToken,
    webServiceURL: deps.webServiceURL,
    fields: pass.fields,
    overrides: pass.overrides,
    changeMessages: pass.changeMessages,
  };
}

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}

/** The signer's bundle, timed for the metrics: signing is the costly step of every create, change and cache miss. */
async function signBundle(deps: PassesDeps, content: PassContent): Promise<Buffer> {
  const started = performance.now();
  const bytes = await deps.signer.sign(content, deps.identity);
  deps.observeSigning?.((performance.now() - started) / 1000);
  return bytes;
}

export async function createPass(deps: PassesDeps, input: NewPass): Promise<StoredPass> {
  const template = findTemplate(deps, input.template);
  const fields = input.fields ?? {};
  checkFieldKeys(template, Object.keys(fields));
  const identity = {
    passTypeIdentifier: deps.identity.passTypeIdentifier,
    serialNumber: input.serialNumber ?? randomUUID(),
    authenticationToken: newAuthenticationToken(),
    template: template.name,
    fields,
    overrides: input.pass ?? {},
    changeMessages: {},
  };
  // Signed before it is stored: a pass that cannot be signed is refused (400), and the first download is a hit.
  const bytes = await signBundle(deps, passContent(deps, identity));
  try {
    const row = await deps.prisma.pass.create({
      data: {
        ...identity,
        fields: identity.fields,
        overrides: identity.overrides as Prisma.InputJsonObject,
        lastModified: truncateToSecond(deps.clock.now()),
        bundle: { create: { version: 1, bytes: new Uint8Array(bytes) } },
      },
    });
    return toStoredPass(row);
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new ConflictError(`A pass with serialNumber "${identity.serialNumber}" already exists`);
    }
    throw error;
  }
}

export async function findPass(
  deps: Pick<PassesDeps, 'prisma'>,
  key: PassKey,
): Promise<StoredPass | undefined> {
  const row = await deps.prisma.pass.findUnique({ where: { passTypeIdentifier_serialNumber: key } });
  return row ? toStoredPass(row) : undefined;
}

export async function getPass(deps: Pick<PassesDeps, 'prisma'>, key: PassKey): Promise<StoredPass> {
  const pass = await findPass(deps, key);
  if (!pass) throw new NotFoundError(`No pass ${key.passTypeIdentifier}/${key.serialNumber}`);
  return pass;
}

export async function countRegistrations(deps: Pick<PassesDeps, 'prisma'>, passId: bigint): Promise<number> {
  return deps.prisma.registration.count({ where: { passId } });
}

/**
 * Applies a change as a new version. In ONE transaction: the new version (fields, overrides, version, Last-Modified,
 * update_xid for lastUpdated tags), its signed bundle, and one outbox row per push token registered for the pass,
 * which the push worker delivers after commit. A change that rolls back leaves no outbox row.
 */
export async function updatePass(deps: PassesDeps, key: PassKey, change: PassChange): Promise<StoredPass> {
  const updated = await deps.prisma.$transaction(async (tx) => {
    const id = await changePassInTransaction(deps, tx, key, change);
    return toStoredPass(await tx.pass.findUniqueOrThrow({ where: { id } }));
  });
  deps.afterChange?.();
  return updated;
}

async function changePassInTransaction(
  deps: PassesDeps,
  tx: Prisma.TransactionClient,
  key: PassKey,
  change: PassChange,
): Promise<bigint> {
  const locked = await tx.$queryRaw<PassRow[]>`
    SELECT id FROM passes
    WHERE pass_type_identifier = ${key.passTypeIdentifier} AND serial_number = ${key.serialNumber}
    FOR UPDATE`;
  const id = locked[0]?.id;
  const current = id === undefined ? undefined : await tx.pass.findUnique({ where: { id } });
  if (!current) throw new NotFoundError(`No pass ${key.passTypeIdentifier}/${key.serialNumber}`);
  const pass = toStoredPass(current);
  const next = await signChange(deps, pass, change);
  const now = deps.clock.now();
  const query = prismaQuery(tx);
  const [updated] = await writeNewVersions(query, [{ id: pass.id, ...next }], now);
  if (!updated) throw new NotFoundError(`No pass ${key.passTypeIdentifier}/${key.serialNumber}`);
  await storeBundles(query, [{ passId: pass.id, version: updated.version, bytes: next.bytes }], now);
  await enqueuePushes(query, pass.id, key.passTypeIdentifier, now);
  return pass.id;
}

/**
 * A Prisma client or interactive transaction as a SqlQuery: the statements below are written once, for both
 * PATCH's Prisma transaction and a bulk page's driver transaction (Database.transaction). Rows come as Prisma's
 * raw queries give them, so the statements cast what the drivers give differently (ids to text).
 */
export function prismaQuery(db: Prisma.TransactionClient): SqlQuery {
  return <Row extends Record<string, unknown>>(sql: string | PreparedStatement, params: unknown[]) =>
    db.$queryRawUnsafe<Row[]>(sqlText(sql), ...params);
}

/** What a change makes of a pass: its merged content and the signed bundle of it (not yet stored). */
export interface SignedChange {
  fields: FieldValues;
  overrides: PassOverrides;
  changeMessages: ChangeMessages;
  bytes: Buffer;
}

/**
 * Merges a change into a pass (fields, overrides and change messages key by key, as PATCH documents it), checks
 * the field keys against the pass's template and signs the result. Throws InvalidError when the template lacks a
 * key or Wallet would refuse the pass. Shared by PATCH and bulk jobs (src/passes/bulk.ts).
 */
export async function signChange(
  deps: PassesDeps,
  pass: Omit<StoredPass, 'id' | 'version' | 'lastModified' | 'createdAt' | 'updatedAt'>,
  change: PassChange,
): Promise<SignedChange> {
  const template = findTemplate(deps, pass.template);
  checkFieldKeys(template, [
    ...Object.keys(change.fields ?? {}),
    ...Object.keys(change.changeMessages ?? {}),
  ]);
  const next = {
    ...pass,
    fields: { ...pass.fields, ...change.fields },
    overrides: { ...pass.overrides, ...change.pass },
    changeMessages: { ...pass.changeMessages, ...change.changeMessages },
  };
  const bytes = await signBundle(deps, passContent(deps, next));
  return { fields: next.fields, overrides: next.overrides, changeMessages: next.changeMessages, bytes };
}

/**
 * Makes the new version of each pass, in one statement: its merged content, version + 1, a Last-Modified that
 * is second-granular and strictly increasing (HTTP dates have whole seconds, and If-Modified-Since must see
 * every change), and update_xid, which lastUpdated tags compare with. The caller holds the rows locked.
 */
export async function writeNewVersions(
  query: SqlQuery,
  passes: ReadonlyArray<{
    id: bigint;
    fields: FieldValues;
    overrides: PassOverrides;
    changeMessages: ChangeMessages;
  }>,
  now: Date,
): Promise<Array<{ id: bigint; version: number }>> {
  // One JSON parameter whatever the number of passes (ids as strings: JSON numbers cannot carry every bigint).
  const rows = JSON.stringify(
    passes.map((pass) => ({
      id: pass.id.toString(),
      fields: pass.fields,
      overrides: pass.overrides,
      change_messages: pass.changeMessages,
    })),
  );
  // The id as text: each driver gives int8 as a type of its own.
  const written = await query<{ id: string; version: number }>(
    `UPDATE passes SET
      fields = c.fields,
      overrides = c.overrides,
      change_messages = c.change_messages,
      version = passes.version + 1,
      last_modified = GREATEST(date_trunc('second', $1::timestamptz), passes.last_modified + interval '1 second'),
      update_xid = pg_current_xact_id()::text::bigint,
      updated_at = $1::timestamptz
    FROM jsonb_to_recordset($2::jsonb) AS c(id bigint, fields jsonb, overrides jsonb, change_messages jsonb)
    WHERE passes.id = c.id
    RETURNING passes.id::text AS id, passes.version`,
    [now, rows],
  );
  return written.map((row) => ({ id: BigInt(row.id), version: row.version }));
}

/**
 * The change record for the push step: one row per push token registered for the pass. A token that already
 * waits for a push of this pass type keeps its one row (changes coalesce); one whose push is in flight gets a new
 * row, since that push may reach the device before this change commits. The no-op DO UPDATE (not DO NOTHING)
 * locks the waiting row until this transaction commits: otherwise a worker could claim and send it before the
 * change is visible, the device would sync too early, and no row would be left for this change.
 */
export async function enqueuePushes(
  query: SqlQuery,
  passIds: bigint | readonly bigint[],
  passTypeIdentifier: string,
  now: Date,
): Promise<number> {
  // One statement for a bulk job's page too (passes of one pass type). DISTINCT: a token registered for several
  // of the passes gets one row (ON CONFLICT cannot touch a row twice in one statement). Ordered by token, so two
  // changes lock the waiting rows in the same order and cannot deadlock on them.
  // Ids as strings (cast by the statement): every driver sends those alike. The count is of rows inserted or
  // touched, as an INSERT's row count would be, in one row.
  const ids = (typeof passIds === 'bigint' ? [passIds] : [...passIds]).map(String);
  const [counted] = await query<{ count: number }>(
    `WITH enqueued AS (
      INSERT INTO push_outbox (push_token, pass_type_identifier, enqueued_at, due_at)
      SELECT DISTINCT d.push_token, $1, $2::timestamptz, $2::timestamptz
      FROM registrations r JOIN devices d ON d.id = r.device_id
      WHERE r.pass_id = ANY($3::bigint[])
      ORDER BY d.push_token
      ON CONFLICT (push_token, pass_type_identifier) WHERE claimed_until IS NULL
        DO UPDATE SET claimed_until = push_outbox.claimed_until
      RETURNING 1)
    SELECT count(*)::int AS count FROM enqueued`,
    [passTypeIdentifier, now, ids],
  );
  return counted?.count ?? 0;
}

export async function deletePass(deps: Pick<PassesDeps, 'prisma'>, key: PassKey): Promise<void> {
  const { count } = await deps.prisma.pass.deleteMany({ where: key });
  if (count === 0) throw new NotFoundError(`No pass ${key.passTypeIdentifier}/${key.serialNumber}`);
}

export interface PassPage {
  passes: StoredPass[];
  nextCursor: string | undefined;
}

/** A page of passes in creation order; the cursor is opaque to clients (the last id, base64url). */
export async function listPasses(
  deps: Pick<PassesDeps, 'prisma'>,
  query: { template?: string | undefined; limit: number; cursor?: string | undefined },
): Promise<PassPage> {
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const rows = await deps.prisma.pass.findMany({
    where: {
      ...(query.template ? { template: query.template } : {}),
      ...(after ? { id: { gt: after } } : {}),
    },
    orderBy: { id: 'asc' },
    take: query.limit + 1,
  });
  const page = rows.slice(0, query.limit).map(toStoredPass);
  const last = page.at(-1);
  return { passes: page, nextCursor: rows.length > query.limit && last ? encodeCursor(last.id) : undefined };
}

function encodeCursor(id: bigint): string {
  return Buffer.from(id.toString()).toString('base64url');
}

function decodeCursor(cursor: string): bigint {
  const text = Buffer.from(cursor, 'base64url').toString();
  if (!/^\d{1,19}$/.test(text)) throw new InvalidError('cursor: not a cursor returned by this API');
  return BigInt(text);
}

/**
 * The signed bundle of the pass's current version: built once per version and shared by every server instance
 * through the database; built again only when the stored one is older than the pass.
 */
export async function getSignedBundle(deps: PassesDeps, pass: StoredPass): Promise<Buffer> {
  // Keyed by version too: memory never answers for a version other than the one the caller read from the database.
  const inMemory = deps.bundleCache?.get(pass.id, pass.version);
  if (inMemory) {
    deps.observeBundleCache?.('hit');
    return inMemory;
  }
  const cached = await deps.prisma.passBundle.findUnique({ where: { passId: pass.id } });
  if (cached && cached.version === pass.version) {
    deps.observeBundleCache?.('hit');
    const bytes = Buffer.from(cached.bytes);
    deps.bundleCache?.set(pass.id, pass.version, bytes);
    return bytes;
  }
  deps.observeBundleCache?.('miss');
  const bytes = await signBundle(deps, passContent(deps, pass));
  await storeBundles(
    prismaQuery(deps.prisma),
    [{ passId: pass.id, version: pass.version, bytes }],
    deps.clock.now(),
  );
  deps.bundleCache?.set(pass.id, pass.version, bytes);
  return bytes;
}

/**
 * Stores bundles, one statement for any number: each keeps the newest version's bundle, an older one never
 * replaces a newer one signed concurrently.
 */
export async function storeBundles(
  query: SqlQuery,
  bundles: ReadonlyArray<{ passId: bigint; version: number; bytes: Buffer }>,
  now: Date,
) {
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
