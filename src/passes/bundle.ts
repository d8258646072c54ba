import { createHash } from 'node:crypto';
import { EOL } from 'node:os';
import { PKPass } from 'passkit-generator';
import { InvalidError } from '../errors.js';
import {
  changeMessagesSchema,
  checkFieldKeys,
  fieldValuesSchema,
  parseOrInvalid,
  passOverridesSchema,
} from './pass-content.js';
import {
  assertSignable,
  fieldValueProblem,
  IDENTITY_KEYS,
  isDateField,
  isW3cDate,
  MIN_AUTHENTICATION_TOKEN_LENGTH,
  OVERRIDE_KEYS,
} from './pass-json-rules.js';
import { createManifestSigner, type ManifestSigner, signDetached } from './signature.js';
import type { SigningIdentity } from './signing-identity.js';
import { sharedSigningPool } from './signing-pool.js';
import { isRecord, type PassStyle, styleFields, type Template } from './templates.js';
import { crc32, type ZipEntry, zipStored } from './zip.js';

/*
 * Template + content → pass.json → signed .pkpass. The pass.json is built here (pure, testable) and handed to
 * passkit-generator, which validates it with Joi, silently drops what it does not like (a key, a field, or the
 * whole file) and decides the bundle's files (localisation, personalisation). Every bundle is checked to carry
 * exactly the pass.json built here; any loss becomes an InvalidError naming the key instead of a different pass.
 *
 * passkit-generator is not asked to sign: its node-forge RSA in JavaScript takes ~20 ms a pass. The files it
 * would zip are taken from it, and the manifest (SHA-1 per file, as Apple asks), the CMS signature
 * (signature.ts, node:crypto) and the zip (zip.ts) are made here, well under a millisecond. The result has the
 * same files with the same bytes as passkit-generator's getAsBuffer(), except `signature` (test/passes/signature.test.ts).
 * buildSignedBundle runs all of it in a worker thread (signing-pool.ts) so requests are never held up.
 */

export interface PassContent {
  template: Template;
  serialNumber: string;
  authenticationToken: string;
  webServiceURL: string;
  fields: Record<string, string | number>;
  overrides: Record<string, unknown>;
  changeMessages: Record<string, string>;
}

export type PassIdentifiers = Pick<SigningIdentity, 'passTypeIdentifier' | 'teamIdentifier'>;

type JsonObject = Record<string, unknown>;

/** The final pass.json: template, then field values and change messages, then overrides, then the identity. */
export function buildPassJson(content: PassContent, identity: PassIdentifiers): JsonObject {
  const { template } = content;
  const fields = parseOrInvalid(fieldValuesSchema, content.fields, 'fields');
  const overrides = parseOrInvalid(passOverridesSchema, content.overrides, 'overrides');
  const changeMessages = parseOrInvalid(changeMessagesSchema, content.changeMessages, 'changeMessages');
  checkFieldKeys(template, Object.keys(fields));
  checkFieldKeys(template, Object.keys(changeMessages));
  checkWebService(content);

  const passJson = structuredClone(template.passJson);
  for (const key of IDENTITY_KEYS) delete passJson[key];
  const byKey = fieldsByKey(passJson, template.style);
  for (const [key, value] of Object.entries(fields)) {
    const field = byKey.get(key) as JsonObject;
    checkFieldValue(field, `fields.${key}`, value);
    // The JSON type is kept: Wallet formats numbers (numberStyle, currencyCode) only when value is a number.
    field.value = value;
  }
  for (const [key, message] of Object.entries(changeMessages)) {
    (byKey.get(key) as JsonObject).changeMessage = message;
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) passJson[key] = value;
  }
  return {
    formatVersion: 1,
    passTypeIdentifier: identity.passTypeIdentifier,
    teamIdentifier: identity.teamIdentifier,
    serialNumber: content.serialNumber,
    ...passJson,
    authenticationToken: content.authenticationToken,
    webServiceURL: lowerCaseHost(content.webServiceURL),
  };
}

/**
 * Host names are case-insensitive, but passkit-generator's URL pattern only accepts lower case and would refuse
 * the whole pass.json for `https://Passes.Example.com`; lowering the host changes nothing for Wallet.
 */
function lowerCaseHost(url: string): string {
  return url.replace(
    /^(https?:\/\/)([^/?#]+)/i,
    (_, scheme: string, host: string) => scheme + host.toLowerCase(),
  );
}

/**
 * The signed .pkpass, built in a worker thread of the shared signing pool so the event loop stays free.
 * Throws InvalidError if Wallet or passkit-generator would refuse or alter the pass.
 */
export async function buildSignedBundle(content: PassContent, identity: SigningIdentity): Promise<Buffer> {
  return sharedSigningPool().sign(content, identity);
}

/**
 * The same build on the calling thread (about half a millisecond, blocking): what each pool worker runs, and what
 * the benchmark times per core. Throws InvalidError if Wallet or passkit-generator would refuse or alter the pass.
 */
export function buildSignedBundleNow(
  content: PassContent,
  identity: SigningIdentity,
  signingTime = new Date(),
): Buffer {
  const passJson = buildPassJson(content, identity);
  const pass = createPkPass(content.template, passJson);
  checkSignable(passJson, pass, content.template.style);
  const files = passkitFiles(pass, content.template);
  // Apple: manifest.json maps every file of the bundle (but itself and signature) to its SHA-1 in hex.
  const manifest: Record<string, string> = {};
  for (const file of files) manifest[file.name] = file.sha1;
  const manifestJson = Buffer.from(JSON.stringify(manifest));
  const signature = signDetached(manifestJson, signerOf(identity), signingTime);
  return zipStored([
    ...files,
    { name: 'manifest.json', data: manifestJson },
    { name: 'signature', data: signature },
  ]);
}

/**
 * Throws InvalidError naming what Wallet (or the signer) would reject in this template, so a template is
 * refused when a pass is created from it rather than when a device downloads it.
 */
export function checkWalletAcceptsTemplate(template: Template, identity: PassIdentifiers): void {
  const placeholder: PassContent = {
    template,
    serialNumber: 'template-check',
    authenticationToken: 'template-check-token',
    webServiceURL: 'https://example.com/passkit',
    fields: {},
    overrides: {},
    changeMessages: {},
  };
  const passJson = buildPassJson(placeholder, identity);
  checkSignable(passJson, createPkPass(template, passJson), template.style);
}

// ---------- content checks ----------

function checkWebService(content: PassContent): void {
  if (content.authenticationToken.length < MIN_AUTHENTICATION_TOKEN_LENGTH) {
    throw new InvalidError('authenticationToken must be at least 16 characters (Apple)');
  }
  if (content.serialNumber === '') throw new InvalidError('serialNumber must not be empty');
  // https in production, http only for local testing: the caller decides; here it only has to be a web URL.
  let protocol: string;
  try {
    protocol = new URL(content.webServiceURL).protocol;
  } catch {
    throw new InvalidError(`webServiceURL "${content.webServiceURL}" is not a URL`);
  }
  if (protocol !== 'https:' && protocol !== 'http:') {
    throw new InvalidError(`webServiceURL must be an http(s) URL, got ${protocol}`);
  }
}

function fieldsByKey(passJson: JsonObject, style: PassStyle): Map<string, JsonObject> {
  const byKey = new Map<string, JsonObject>();
  for (const { field } of styleFields(passJson, style)) {
    if (isRecord(field) && typeof field.key === 'string') byKey.set(field.key, field);
  }
  return byKey;
}

function checkFieldValue(field: JsonObject, where: string, value: unknown): void {
  const problem = fieldValueProblem(field, value);
  if (problem !== undefined) throw new InvalidError(`${where}: ${problem}`);
  if (isDateField(field) && !isW3cDate(value)) {
    throw new InvalidError(
      `${where}: a date field (it has dateStyle/timeStyle) needs an ISO 8601 date-time with a time zone, got ${JSON.stringify(value)}`,
    );
  }
}

/**
 * Throws InvalidError naming what Wallet or passkit-generator would refuse in the pass.json about to be signed,
 * given the PKPass made of it. The template's own top-level keys obey the same rules as admin overrides.
 */
function checkSignable(passJson: JsonObject, pass: PKPass, style: PassStyle): void {
  const overridable = Object.fromEntries(
    Object.entries(passJson).filter(([key]) => (OVERRIDE_KEYS as readonly string[]).includes(key)),
  );
  parseOrInvalid(passOverridesSchema, overridable, 'pass.json');
  assertSignable(passJson, { ...pass.props }, style);
}

// ---------- passkit-generator: validation and the list of files ----------

/** In-memory buffers only: the template's files were read once at start. No certificates: it never signs. */
function createPkPass(template: Template, passJson: JsonObject): PKPass {
  return new PKPass({ ...template.files, 'pass.json': Buffer.from(JSON.stringify(passJson)) });
}

interface BundleFile extends ZipEntry {
  sha1: string;
}

/** SHA-1 and CRC-32 of a template's files, computed once: the same Buffer objects come back for every pass. */
const templateFileDigests = new WeakMap<Buffer, { sha1: string; crc32: number }>();

function fileOf(name: string, data: Buffer, cache: boolean): BundleFile {
  let digest = cache ? templateFileDigests.get(data) : undefined;
  if (digest === undefined) {
    digest = { sha1: createHash('sha1').update(data).digest('hex'), crc32: crc32(data) };
    if (cache) templateFileDigests.set(data, digest);
  }
  return { name, data, ...digest };
}

/** passkit-generator 3.6.1 keeps its translations under this symbol (PKPass.ts: `Symbol("pass.l10n")`). */
function translationsOf(pass: PKPass): Record<string, Record<string, string>> {
  const symbol = Object.getOwnPropertySymbols(pass).find((each) => each.description === 'pass.l10n');
  const translations =
    symbol === undefined ? undefined : (pass as unknown as Record<symbol, unknown>)[symbol];
  if (!isRecord(translations)) {
    throw new Error(
      'passkit-generator changed: its translations (Symbol("pass.l10n")) are not where 3.6.1 kept them',
    );
  }
  return translations as Record<string, Record<string, string>>;
}

/**
 * The files passkit-generator 3.6.1 would zip, in its order, as its closing step (PKPass [closePassSymbol]) makes
 * them: the files it accepted, pass.json from its validated props, one pass.strings per language with
 * translations, and personalisation files only when the pass can be personalised. The equality with its own
 * getAsBuffer() is checked by test/passes/signature.test.ts, so an upgrade that changes any of this fails there.
 */
function passkitFiles(pass: PKPass, template: Template): BundleFile[] {
  const props = pass.props as unknown as JsonObject;
  const names = pass.files;
  const personalizable =
    Boolean(props.nfc) &&
    names.includes('personalization.json') &&
    names.some((name) => /personalizationLogo@(?:.{2})/.test(name));
  const files: BundleFile[] = [];
  for (const name of names) {
    if (!personalizable && name.includes('personalization')) continue;
    if (name === 'pass.json') {
      files.push(fileOf(name, Buffer.from(JSON.stringify(props)), false));
      continue;
    }
    const data = template.files[name];
    if (data === undefined)
      throw new Error(`passkit-generator kept "${name}", which the template does not have`);
    files.push(fileOf(name, data, true));
  }
  const languages = Object.entries(translationsOf(pass));
  for (let i = languages.length - 1; i >= 0; i--) {
    const [language, translations] = languages[i] as [string, Record<string, string>];
    const lines = Object.entries(translations).map(([key, value]) => `"${key}" = "${value}";`);
    if (lines.length > 0)
      files.push(fileOf(`${language}.lproj/pass.strings`, Buffer.from(lines.join(EOL)), false));
  }
  return files;
}

/** The parsed key and certificates of an identity, kept as long as the identity object lives. */
const signers = new WeakMap<SigningIdentity, ManifestSigner>();

function signerOf(identity: SigningIdentity): ManifestSigner {
  let signer = signers.get(identity);
  if (signer === undefined) {
    signer = createManifestSigner(identity);
    signers.set(identity, signer);
  }
  return signer;
}
