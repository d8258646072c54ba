import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type {
  ImageChanges,
  ImageFiles,
  PassContentRecord,
  PassesRepository,
  PassKey,
  PassRecord,
  PassSummary,
} from '../db/passes.js';
import type { Repositories, TransactionRepositories } from '../db/repositories.js';
import type { TemplateReader } from '../db/templates.js';
import { CertificateExpiredError, ConflictError, InvalidError, NotFoundError } from '../errors.js';
import type { PassContent } from '../signing/bundle.js';
import type { Identities, PassTypeIdentity } from '../signing/identities.js';
import { isExpired } from '../signing/identity.js';
import type { Signer } from '../signing/signer.js';
import type { BundleCache } from './bundle-cache.js';
import {
  type ChangeMessages,
  checkFieldKeys,
  type FieldValues,
  type PassOverrides,
  type PassStrings,
} from './pass-content.js';
import { checkPassImage } from './pass-images.js';
import type { TemplateCatalog } from './template-catalog.js';
import { imageConflict, type Template } from './templates.js';
import { newAuthenticationToken } from './tokens.js';
import { truncateToSecond } from './versions.js';

/** What the passes service needs from the outside: the repositories, the templates and the signer. */
export interface PassesDeps {
  repositories: Repositories;
  /** MODELS_DIR's templates and those uploaded through the admin API, by name and version. */
  templates: TemplateCatalog;
  /** The pass type identities; a pass is signed with the one of its passTypeIdentifier. */
  identities: Identities;
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

export type { PassKey, PassSummary };

export interface StoredPass extends PassKey {
  id: bigint;
  authenticationToken: string;
  template: string;
  templateVersion: number | null;
  fields: FieldValues;
  overrides: PassOverrides;
  changeMessages: ChangeMessages;
  strings: PassStrings;
  version: number;
  lastModified: Date;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewPass {
  /** One of the identities; the primary one (CERTIFICATES_DIR's) when absent. */
  passTypeIdentifier?: string | undefined;
  template: string;
  serialNumber?: string | undefined;
  fields?: FieldValues | undefined;
  pass?: PassOverrides | undefined;
  changeMessages?: ChangeMessages | undefined;
  strings?: PassStrings | undefined;
}

export interface PassChange {
  /** The version of the pass's uploaded template to move it to. */
  templateVersion?: number | undefined;
  fields?: FieldValues | undefined;
  pass?: PassOverrides | undefined;
  changeMessages?: ChangeMessages | undefined;
  strings?: PassStrings | undefined;
  /** The pass's own images to store (checked against its template's style) or, as null, to drop. */
  images?: ImageChanges | undefined;
}

/** What a pass is signed from: its content and its own images. */
export type PassToSign = Omit<StoredPass, 'id' | 'version' | 'lastModified' | 'createdAt' | 'updatedAt'> & {
  images: ImageFiles;
};

/** The content a change starts from: the stored JSON as the types it was validated as when it was written. */
export function contentOf<R extends PassContentRecord>(record: R) {
  return {
    ...record,
    fields: record.fields as FieldValues,
    overrides: record.overrides as PassOverrides,
    changeMessages: record.changeMessages as ChangeMessages,
    strings: record.strings as PassStrings,
  };
}

const toStoredPass = (record: PassRecord): StoredPass => contentOf(record);

/**
 * A template by name (its latest version when none is given); InvalidError names the ones there are. `reader`: the
 * transaction's, when called inside one.
 */
export async function findTemplate(
  deps: Pick<PassesDeps, 'templates'>,
  name: string,
  version?: number | null,
  reader?: TemplateReader,
): Promise<Template> {
  const template = await deps.templates.find(name, version, reader);
  if (!template) {
    const which = version === undefined || version === null ? `"${name}"` : `"${name}" version ${version}`;
    // Inside a transaction nothing more is read (PGlite's one connection is the transaction's).
    if (reader) throw new InvalidError(`Unknown template ${which}`);
    const known = (await deps.templates.list()).map((entry) => entry.template.name).join(', ');
    throw new InvalidError(`Unknown template ${which}; known templates: ${known || 'none'}`);
  }
  return template;
}

function passContent(deps: PassesDeps, template: Template, pass: PassToSign): PassContent {
  return {
    template,
    serialNumber: pass.serialNumber,
    authenticationToken: pass.authenticationToken,
    webServiceURL: deps.webServiceURL,
    fields: pass.fields,
    overrides: pass.overrides,
    changeMessages: pass.changeMessages,
    strings: pass.strings,
    images: pass.images,
  };
}

/** The identity a pass is signed with: the one of its pass type identifier. */
async function identityOf(
  deps: Pick<PassesDeps, 'identities'>,
  passTypeIdentifier: string,
  within: InTransaction | undefined,
): Promise<PassTypeIdentity> {
  // Inside a transaction nothing else is read (PGlite's one connection is the transaction's); callers look the
  // identity up before they start one.
  const identity = within
    ? deps.identities.get(passTypeIdentifier)
    : await deps.identities.find(passTypeIdentifier);
  if (!identity) {
    const known = deps.identities.list().map((each) => each.signing.passTypeIdentifier);
    throw new InvalidError(
      `No identity for passTypeIdentifier "${passTypeIdentifier}"; known: ${known.join(', ')} (GET /admin/identities)`,
    );
  }
  return identity;
}

/** The signer's bundle, timed for the metrics: signing is the costly step of every create, change and cache miss. */
async function signBundle(
  deps: PassesDeps,
  content: PassContent,
  passTypeIdentifier: string,
  within?: InTransaction,
): Promise<Buffer> {
  const identity = (await identityOf(deps, passTypeIdentifier, within)).signing;
  assertCanSign(identity, deps.clock.now());
  const started = performance.now();
  const bytes = await deps.signer.sign(content, identity);
  deps.observeSigning?.((performance.now() - started) / 1000);
  return bytes;
}

/** Refuses what needs a new signature once the certificate has expired: Wallet would reject the pass. */
function assertCanSign(identity: PassTypeIdentity['signing'], now: Date): void {
  if (isExpired(identity, now)) {
    throw new CertificateExpiredError(
      `The signing certificate of ${identity.passTypeIdentifier} expired on ${identity.notAfter.toISOString()}: ` +
        'passes are served as last signed, and none can be created or changed until a new certificate is installed',
    );
  }
}

export async function createPass(deps: PassesDeps, input: NewPass): Promise<StoredPass> {
  const template = await findTemplate(deps, input.template);
  const fields = input.fields ?? {};
  const changeMessages = input.changeMessages ?? {};
  checkFieldKeys(template, [...Object.keys(fields), ...Object.keys(changeMessages)]);
  // A brand's template makes passes of its identity only.
  if (
    template.passTypeIdentifier &&
    input.passTypeIdentifier &&
    input.passTypeIdentifier !== template.passTypeIdentifier
  ) {
    throw new InvalidError(
      `passTypeIdentifier: template "${template.name}" makes passes of ${template.passTypeIdentifier} only`,
    );
  }
  const identity = {
    passTypeIdentifier:
      input.passTypeIdentifier ??
      template.passTypeIdentifier ??
      deps.identities.primary().signing.passTypeIdentifier,
    serialNumber: input.serialNumber ?? randomUUID(),
    authenticationToken: newAuthenticationToken(),
    template: template.name,
    templateVersion: template.version,
    fields,
    overrides: input.pass ?? {},
    changeMessages,
    strings: input.strings ?? {},
  };
  // Signed before it is stored: a pass that cannot be signed is refused (400), and the first download is a hit.
  const bytes = await signBundle(
    deps,
    passContent(deps, template, { ...identity, images: {} }),
    identity.passTypeIdentifier,
  );
  const stored = await deps.repositories.passes.create({
    ...identity,
    lastModified: truncateToSecond(deps.clock.now()),
    bytes,
  });
  if (!stored) throw new ConflictError(`A pass with serialNumber "${identity.serialNumber}" already exists`);
  return toStoredPass(stored);
}

export async function findPass(
  deps: Pick<PassesDeps, 'repositories'>,
  key: PassKey,
): Promise<StoredPass | undefined> {
  const record = await deps.repositories.passes.find(key);
  return record ? toStoredPass(record) : undefined;
}

export async function getPass(deps: Pick<PassesDeps, 'repositories'>, key: PassKey): Promise<StoredPass> {
  const pass = await findPass(deps, key);
  if (!pass) throw new NotFoundError(`No pass ${key.passTypeIdentifier}/${key.serialNumber}`);
  return pass;
}

/** One of the pass's own images (not its template's): 404 when the pass or the image is not there. */
export async function getPassImage(
  deps: Pick<PassesDeps, 'repositories'>,
  key: PassKey,
  name: string,
): Promise<Buffer> {
  const pass = await getPass(deps, key);
  const image = await deps.repositories.passes.findImage(pass.id, name);
  if (!image) throw noOwnImage(name);
  return image;
}

const noOwnImage = (name: string) => new NotFoundError(`The pass has no image "${name}" of its own`);

/** The pass's own images, which every signing of it needs (the template's are in memory). */
async function ownImages(passes: Pick<PassesRepository, 'readImages'>, id: bigint): Promise<ImageFiles> {
  return (await passes.readImages([id])).get(id) ?? {};
}

/** Devices registered and own image names, per pass: one statement for a whole page of passes. */
export async function summarize(
  deps: Pick<PassesDeps, 'repositories'>,
  passes: readonly StoredPass[],
): Promise<Map<bigint, PassSummary>> {
  return deps.repositories.passes.summaries(passes.map((pass) => pass.id));
}

/** Longest a change's transaction may take (its lock wait, signing and writes). */
const CHANGE_TIMEOUT_MS = 5_000;
/** Longest a change waits for the changes of the same pass before it in this process. */
const CHANGE_MAX_WAIT_MS = 30_000;

/**
 * Applies a change as a new version. In ONE transaction: the new version (fields, overrides, version, Last-Modified,
 * update_xid for lastUpdated tags), its signed bundle, and one outbox row per push token registered for the pass,
 * which the push worker delivers after commit. A change that rolls back leaves no outbox row.
 */
export async function updatePass(deps: PassesDeps, key: PassKey, change: PassChange): Promise<StoredPass> {
  const notFound = () => new NotFoundError(`No pass ${key.passTypeIdentifier}/${key.serialNumber}`);
  // Read before the transaction, which reads nothing but its own statements.
  await deps.identities.find(key.passTypeIdentifier);
  const updated = await deps.repositories.inTransaction(
    async (tx) => {
      const current = await tx.passes.lockForChange(key);
      if (!current) throw notFound();
      const pass = toStoredPass(current);
      const images = await ownImages(tx.passes, pass.id);
      const next = await signChange(deps, { ...pass, images }, change, tx);
      const now = deps.clock.now();
      const [written] = await tx.passes.writeNewVersions([{ id: pass.id, ...next }], now);
      if (!written) throw notFound();
      if (change.images) await tx.passes.writeImages(pass.id, change.images, now);
      await tx.passes.storeBundles([{ passId: pass.id, version: written.version, bytes: next.bytes }], now);
      await tx.outbox.enqueue(pass.id, key.passTypeIdentifier, now);
      const stored = await tx.passes.findById(pass.id);
      if (!stored) throw notFound();
      return toStoredPass(stored);
    },
    // Changes of one pass wait their turn in this process, outside any transaction, so 50 at once all succeed;
    // one that still waits too long, or is stuck on a lock held elsewhere (a bulk page, another instance), ends,
    // rolls back and is answered 503 with Retry-After (src/db/repositories.ts).
    {
      timeoutMs: CHANGE_TIMEOUT_MS,
      queue: { key: `${key.passTypeIdentifier}/${key.serialNumber}`, maxWaitMs: CHANGE_MAX_WAIT_MS },
    },
  );
  deps.afterChange?.();
  return updated;
}

/**
 * The transaction a change is signed in, if any: a template version this instance has not read yet is read on its
 * connection, and nothing else is read (PGlite has one connection, the transaction's).
 */
export type InTransaction = Pick<TransactionRepositories, 'templates'>;

/** What a change makes of a pass: its merged content and the signed bundle of it (not yet stored). */
export interface SignedChange {
  templateVersion: number | null;
  fields: FieldValues;
  overrides: PassOverrides;
  changeMessages: ChangeMessages;
  strings: PassStrings;
  bytes: Buffer;
}

/**
 * Merges a change into a pass (fields, overrides, change messages and each language's strings key by key, as PATCH
 * documents it), checks the field keys against the pass's template and signs the result. Throws InvalidError when
 * the template lacks a key or Wallet would refuse the pass. Shared by PATCH and bulk jobs (src/passes/bulk.ts).
 */
export async function signChange(
  deps: PassesDeps,
  pass: PassToSign,
  change: PassChange,
  within?: InTransaction,
): Promise<SignedChange> {
  if (change.templateVersion !== undefined && pass.templateVersion === null) {
    throw new InvalidError(
      `templateVersion: template "${pass.template}" is a MODELS_DIR template, which has no versions`,
    );
  }
  const version = change.templateVersion ?? pass.templateVersion;
  const template = await findTemplate(deps, pass.template, version, within?.templates);
  checkFieldKeys(template, [
    ...Object.keys(change.fields ?? {}),
    ...Object.keys(change.changeMessages ?? {}),
  ]);
  const next: PassToSign = {
    ...pass,
    templateVersion: template.version,
    fields: { ...pass.fields, ...change.fields },
    overrides: { ...pass.overrides, ...change.pass },
    changeMessages: { ...pass.changeMessages, ...change.changeMessages },
    strings: mergeByLanguage(pass.strings, change.strings),
    images: changeImages(template, pass.images, change.images),
  };
  const bytes = await signBundle(deps, passContent(deps, template, next), pass.passTypeIdentifier, within);
  const { templateVersion, fields, overrides, changeMessages, strings } = next;
  return { templateVersion, fields, overrides, changeMessages, strings, bytes };
}

function changeImages(
  template: Template,
  current: ImageFiles,
  changes: ImageChanges | undefined,
): ImageFiles {
  const images = { ...current };
  if (changes === undefined) return images;
  for (const [name, bytes] of Object.entries(changes)) {
    if (bytes === null) {
      if (!Object.hasOwn(images, name)) throw noOwnImage(name);
      delete images[name];
    } else {
      checkPassImage(template.style, name, bytes);
      images[name] = bytes;
    }
  }
  const conflict = imageConflict(template.style, [...Object.keys(template.files), ...Object.keys(images)]);
  if (conflict !== undefined) throw new InvalidError(`images: ${conflict}`);
  return images;
}

function mergeByLanguage(current: PassStrings, change: PassStrings | undefined): PassStrings {
  const merged = { ...current };
  for (const [language, entries] of Object.entries(change ?? {})) {
    merged[language] = { ...current[language], ...entries };
  }
  return merged;
}

export async function deletePass(deps: Pick<PassesDeps, 'repositories'>, key: PassKey): Promise<void> {
  if (!(await deps.repositories.passes.delete(key)))
    throw new NotFoundError(`No pass ${key.passTypeIdentifier}/${key.serialNumber}`);
}

export interface PassPage {
  passes: StoredPass[];
  nextCursor: string | undefined;
}

/** A page of passes in creation order; the cursor is opaque to clients (the last id, base64url). */
export async function listPasses(
  deps: Pick<PassesDeps, 'repositories'>,
  query: { template?: string | undefined; limit: number; cursor?: string | undefined },
): Promise<PassPage> {
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const rows = await deps.repositories.passes.list({
    template: query.template,
    after,
    take: query.limit + 1,
  });
  const page = rows.slice(0, query.limit).map(toStoredPass);
  const last = page.at(-1);
  return { passes: page, nextCursor: rows.length > query.limit && last ? encodeCursor(last.id) : undefined };
}

function encodeCursor(id: bigint): string {
  return Buffer.from(id.toString()).toString('base64url');
}

/** Pass ids are PostgreSQL bigints: a cursor past the largest one was never returned (and would not fit the query). */
const maxPassId = 2n ** 63n - 1n;

function decodeCursor(cursor: string): bigint {
  const text = Buffer.from(cursor, 'base64url').toString();
  const id = /^\d{1,19}$/.test(text) ? BigInt(text) : undefined;
  if (id === undefined || id > maxPassId) throw new InvalidError('cursor: not a cursor returned by this API');
  return id;
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
  const cached = await deps.repositories.passes.findBundle(pass.id);
  if (cached && cached.version === pass.version) {
    deps.observeBundleCache?.('hit');
    deps.bundleCache?.set(pass.id, pass.version, cached.bytes);
    return cached.bytes;
  }
  // An expired certificate signs nothing more: the last bundle signed is what the pass is until it is rotated.
  const identity = await deps.identities.find(pass.passTypeIdentifier);
  if (cached && (!identity || isExpired(identity.signing, deps.clock.now()))) return cached.bytes;
  deps.observeBundleCache?.('miss');
  const [images, template] = await Promise.all([
    ownImages(deps.repositories.passes, pass.id),
    findTemplate(deps, pass.template, pass.templateVersion),
  ]);
  const bytes = await signBundle(
    deps,
    passContent(deps, template, { ...pass, images }),
    pass.passTypeIdentifier,
  );
  // An older version's bundle never replaces a newer one signed concurrently (the repository's rule).
  await deps.repositories.passes.storeBundles(
    [{ passId: pass.id, version: pass.version, bytes }],
    deps.clock.now(),
  );
  deps.bundleCache?.set(pass.id, pass.version, bytes);
  return bytes;
}
