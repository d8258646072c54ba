import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { PrismaClient } from '../db/database.js';
import { Prisma } from '../db/generated/client.js';
import { ConflictError, InvalidError, NotFoundError } from '../errors.js';
import { buildSignedBundle, type PassContent } from './bundle.js';
import type { BundleCache } from './bundle-cache.js';
import { type ChangeMessages, checkFieldKeys, type FieldValues, type PassOverrides } from './pass-content.js';
import type { SigningIdentity } from './signing-identity.js';
import type { Template } from './templates.js';
import { newAuthenticationToken } from './tokens.js';
import { truncateToSecond } from './versions.js';

/** What the passes service needs from the outside: one database handle, the templates and the signer. */
export interface PassesDeps {
  prisma: PrismaClient;
  templates: ReadonlyMap<string, Template>;
  identity: SigningIdentity;
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

/** buildSignedBundle, timed for the metrics: signing is the costly step of every create, change and cache miss. */
async function signBundle(deps: PassesDeps, content: PassContent): Promise<Buffer> {
  const started = performance.now();
  const bytes = await buildSignedBundle(content, deps.identity);
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
    // Without a `once` guard the change is always made: undefined cannot come back here.
    const id = (await changePassInTransaction(deps, tx, key, change)) ?? -1n;
    return toStoredPass(await tx.pass.findUniqueOrThrow({ where: { id } }));
  });
  deps.afterChange?.();
  return updated;
}

/**
 * For many passes (src/passes/bulk.ts): the same change as updatePass, in the pass's own transaction, without the
 * re-read of the pass and without waking the push worker (the caller wakes it once per page). `once` runs in the
 * transaction with the pass locked: false means the change was already applied, and nothing is changed.
 */
export async function applyPassChange(
  deps: PassesDeps,
  key: PassKey,
  change: PassChange,
  once?: (tx: Prisma.TransactionClient, passId: bigint) => Promise<boolean>,
): Promise<'changed' | 'already'> {
  return deps.prisma.$transaction(async (tx) =>
    (await changePassInTransaction(deps, tx, key, change, once)) === undefined ? 'already' : 'changed',
  );
}

async function changePassInTransaction(
  deps: PassesDeps,
  tx: Prisma.TransactionClient,
  key: PassKey,
  change: PassChange,
  once?: (tx: Prisma.TransactionClient, passId: bigint) => Promise<boolean>,
): Promise<bigint | undefined> {
  const locked = await tx.$queryRaw<PassRow[]>`
    SELECT id FROM passes
    WHERE pass_type_identifier = ${key.passTypeIdentifier} AND serial_number = ${key.serialNumber}
    FOR UPDATE`;
  const id = locked[0]?.id;
  const current = id === undefined ? undefined : await tx.pass.findUnique({ where: { id } });
  if (!current) throw new NotFoundError(`No pass ${key.passTypeIdentifier}/${key.serialNumber}`);
  if (once && !(await once(tx, current.id))) return undefined;
  const pass = toStoredPass(current);
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
  const now = deps.clock.now();
  const [updated] = await tx.$queryRaw<Array<{ version: number }>>`
    UPDATE passes SET
      fields = ${JSON.stringify(next.fields)}::jsonb,
      overrides = ${JSON.stringify(next.overrides)}::jsonb,
      change_messages = ${JSON.stringify(next.changeMessages)}::jsonb,
      version = version + 1,
      last_modified = GREATEST(date_trunc('second', ${now}::timestamptz), last_modified + interval '1 second'),
      update_xid = pg_current_xact_id()::text::bigint,
      updated_at = ${now}::timestamptz
    WHERE id = ${pass.id}
    RETURNING version`;
  if (!updated) throw new NotFoundError(`No pass ${key.passTypeIdentifier}/${key.serialNumber}`);
  await storeBundle(tx, pass.id, updated.version, bytes, now);
  await enqueuePushes(tx, pass.id, key.passTypeIdentifier, now);
  return pass.id;
}

/**
 * The change record for the push step: one row per push token registered for the pass. A token that already
 * waits for a push of this pass type keeps its one row (changes coalesce); one whose push is in flight gets a new
 * row, since that push may reach the device before this change commits. The no-op DO UPDATE (not DO NOTHING)
 * locks the waiting row until this transaction commits: otherwise a worker could claim and send it before the
 * change is visible, the device would sync too early, and no row would be left for this change.
 */
export async function enqueuePushes(
  tx: Prisma.TransactionClient,
  passId: bigint,
  passTypeIdentifier: string,
  now: Date,
): Promise<number> {
  return tx.$executeRaw`
    INSERT INTO push_outbox (push_token, pass_type_identifier, enqueued_at, due_at)
    SELECT DISTINCT d.push_token, ${passTypeIdentifier}, ${now}::timestamptz, ${now}::timestamptz
    FROM registrations r JOIN devices d ON d.id = r.device_id
    WHERE r.pass_id = ${passId}
    ON CONFLICT (push_token, pass_type_identifier) WHERE claimed_until IS NULL
      DO UPDATE SET claimed_until = push_outbox.claimed_until`;
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
  await storeBundle(deps.prisma, pass.id, pass.version, bytes, deps.clock.now());
  deps.bundleCache?.set(pass.id, pass.version, bytes);
  return bytes;
}

/** Keeps the newest version's bundle: an older one never replaces a newer one signed concurrently. */
async function storeBundle(
  db: Prisma.TransactionClient,
  passId: bigint,
  version: number,
  bytes: Buffer,
  now: Date,
) {
  await db.$executeRaw`
    INSERT INTO pass_bundles (pass_id, version, bytes, signed_at)
    VALUES (${passId}, ${version}, ${new Uint8Array(bytes)}, ${now}::timestamptz)
    ON CONFLICT (pass_id) DO UPDATE SET version = EXCLUDED.version, bytes = EXCLUDED.bytes, signed_at = EXCLUDED.signed_at
    WHERE pass_bundles.version < EXCLUDED.version`;
}
