import { createHash } from 'node:crypto';
import type { PKPass } from 'passkit-generator';
import { InvalidError } from '../errors.js';
import { isRecord } from '../json.js';
import {
  changeMessagesSchema,
  checkFieldKeys,
  fieldValuesSchema,
  type PassStrings,
  parseOrInvalid,
  passOverridesSchema,
  passStringsSchema,
} from '../passes/pass-content.js';
import {
  assertSignable,
  fieldValueProblem,
  IDENTITY_KEYS,
  isDateField,
  isW3cDate,
  MIN_AUTHENTICATION_TOKEN_LENGTH,
  OVERRIDE_KEYS,
  quietPkPass,
} from '../passes/pass-json-rules.js';
import { type PassStyle, styleFields, type Template } from '../passes/templates.js';
import type { SigningIdentity } from './identity.js';
import { mergeStrings } from './pass-strings.js';
import { createManifestSigner, type ManifestSigner, signDetached } from './signature.js';
import { crc32, type ZipEntry, zipStored } from './zip.js';

/*
 * Template + content → pass.json → signed .pkpass, on the calling thread (the Signer runs it in worker threads,
 * src/signing/signer.ts). The pass.json is built here (pure, testable) and handed to passkit-generator, which
 * validates it with Joi and silently drops what it does not like (a key, a field, or the whole file). Every bundle
 * is checked to carry exactly the pass.json built here; any loss becomes an InvalidError naming the key instead of
 * a different pass.
 *
 * passkit-generator is not asked to sign: its node-forge RSA runs in JavaScript and is what made stock signing
 * dozens of times slower than this (bench/signing.ts). The bundle's files are decided here from the template and
 * passkit-generator's public getters; the manifest (SHA-1 per file, as Apple asks), the CMS signature
 * (signature.ts, node:crypto) and the zip (zip.ts) are made here. test/signing/signature.test.ts checks the result
 * against passkit-generator's own getAsBuffer().
 */

export interface PassContent {
  template: Template;
  serialNumber: string;
  authenticationToken: string;
  webServiceURL: string;
  fields: Record<string, string | number>;
  overrides: Record<string, unknown>;
  changeMessages: Record<string, string>;
  /** The pass's own pass.strings entries by language, merged with the template's. */
  strings: PassStrings;
  /** The pass's own images by bundle file name (checked by src/passes/pass-images.ts), replacing the template's. */
  images: Readonly<Record<string, Buffer>>;
}

export type PassIdentifiers = Pick<SigningIdentity, 'passTypeIdentifier' | 'teamIdentifier'>;

/** A pass of the template with nothing of its own: no field values, overrides, change messages, strings or images. */
export function bareContent(
  template: Template,
  pass: Pick<PassContent, 'serialNumber' | 'authenticationToken' | 'webServiceURL'>,
): PassContent {
  return { template, ...pass, fields: {}, overrides: {}, changeMessages: {}, strings: {}, images: {} };
}

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

/** The signed .pkpass. Throws InvalidError if Wallet or passkit-generator would refuse or alter the pass. */
export function buildSignedBundle(
  content: PassContent,
  identity: SigningIdentity,
  signingTime = new Date(),
): Buffer {
  const passJson = buildPassJson(content, identity);
  const sources = { ...content.template.files, ...content.images };
  const pass = createPkPass(sources, passJson);
  checkSignable(passJson, pass, content.template.style);
  const strings = parseOrInvalid(passStringsSchema, content.strings, 'strings');
  const files = bundleFiles(pass, content.template, sources, strings);
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
  const placeholder = bareContent(template, {
    serialNumber: 'template-check',
    authenticationToken: 'template-check-token',
    webServiceURL: 'https://example.com/passkit',
  });
  const passJson = buildPassJson(placeholder, identity);
  checkSignable(passJson, createPkPass(template.files, passJson), template.style);
}

/** What Wallet (or the signer) would refuse in the passes this template makes, or undefined when it accepts them. */
export function templateProblem(template: Template, identity: PassIdentifiers): string | undefined {
  try {
    checkWalletAcceptsTemplate(template, identity);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
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

// ---------- passkit-generator's validation, and the bundle's files ----------

/**
 * In-memory buffers only: the template's files (read once at start) and the pass's own images. No certificates:
 * it never signs. What passkit-generator says is not needed here: checkSignable finds each value it dropped and
 * names it.
 */
function createPkPass(sources: Readonly<Record<string, Buffer>>, passJson: JsonObject): PKPass {
  return quietPkPass({ ...sources, 'pass.json': Buffer.from(JSON.stringify(passJson)) }).pass;
}

interface BundleFile extends ZipEntry {
  sha1: string;
}

/**
 * SHA-1 and CRC-32 of a template's files (and a pass's own images), computed once per Buffer: a template's come
 * back for every pass.
 */
const templateFileDigests = new WeakMap<Buffer, { sha1: string; crc32: number }>();

function fileOf(name: string, data: Buffer, cache: boolean): BundleFile {
  let digest = cache ? templateFileDigests.get(data) : undefined;
  if (digest === undefined) {
    digest = { sha1: createHash('sha1').update(data).digest('hex'), crc32: crc32(data) };
    if (cache) templateFileDigests.set(data, digest);
  }
  return { name, data, ...digest };
}

/** Localisations: `<lang>.lproj/pass.strings`, which passkit-generator takes out of its file list to parse. */
const PASS_STRINGS = /^[^/]+\.lproj\/pass\.strings$/;
const PERSONALIZATION_FILE = /(?:^|\/)personalization(?:\.json$|Logo)/;
const PERSONALIZATION_LOGO = /(?:^|\/)personalizationLogo(?:@\dx)?\.png$/;

/**
 * The bundle's files, from the sources (the template's files, the pass's own images over them) and
 * passkit-generator's public getters only: the files it accepted (`files`: no manifest or signature,
 * personalization.json only when valid), pass.json as its validated `props`,
 * and every pass.strings as the template has it (passkit-generator would rewrite them from what its parser
 * understood), except the languages the pass has strings of: those are the template's merged with the pass's.
 */
function bundleFiles(
  pass: PKPass,
  template: Template,
  sources: Readonly<Record<string, Buffer>>,
  strings: PassStrings,
): BundleFile[] {
  const props = pass.props;
  const names = pass.files;
  // Apple: a pass can be personalised only with an NFC dictionary, personalization.json and personalizationLogo;
  // otherwise the personalisation files are left out.
  const personalizable =
    props.nfc !== undefined &&
    names.includes('personalization.json') &&
    names.some((name) => PERSONALIZATION_LOGO.test(name));
  const ownStrings = new Map(
    Object.entries(strings).map(([language, entries]) => [`${language}.lproj/pass.strings`, entries]),
  );
  const files: BundleFile[] = [];
  for (const name of names) {
    if (ownStrings.has(name) || (!personalizable && PERSONALIZATION_FILE.test(name))) continue;
    if (name === 'pass.json') {
      files.push(fileOf(name, Buffer.from(JSON.stringify(props)), false));
      continue;
    }
    const data = sources[name];
    if (data === undefined)
      throw new Error(`passkit-generator kept "${name}", which neither the template nor the pass has`);
    files.push(fileOf(name, data, true));
  }
  for (const [name, data] of Object.entries(template.files)) {
    if (PASS_STRINGS.test(name) && !names.includes(name) && !ownStrings.has(name))
      files.push(fileOf(name, data, true));
  }
  for (const [name, entries] of ownStrings) {
    const merged = mergeStrings(template.files[name], entries, `template "${template.name}": ${name}`);
    files.push(fileOf(name, merged, false));
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
