import { createHash } from 'node:crypto';
import { PKPass } from 'passkit-generator';
import { InvalidError } from '../errors.js';
import {
  changeMessagesSchema,
  checkFieldKeys,
  fieldValuesSchema,
  IDENTITY_KEYS,
  isW3cDate,
  OVERRIDE_KEYS,
  parseOrInvalid,
  passOverridesSchema,
  TRANSIT_TYPES,
} from '../passes/pass-content.js';
import { isRecord, type PassStyle, styleFields, type Template } from '../passes/templates.js';
import type { SigningIdentity } from './identity.js';
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

/** The signed .pkpass. Throws InvalidError if Wallet or passkit-generator would refuse or alter the pass. */
export function buildSignedBundle(
  content: PassContent,
  identity: SigningIdentity,
  signingTime = new Date(),
): Buffer {
  const passJson = buildPassJson(content, identity);
  checkWalletRules(passJson, content.template.style);
  const pass = createPkPass(content.template, passJson);
  assertSignerKeeps(passJson, pass, content.template.style);
  const files = bundleFiles(pass, content.template);
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
  checkWalletRules(passJson, template.style);
  assertSignerKeeps(passJson, createPkPass(template, passJson), template.style);
}

// ---------- content checks ----------

function checkWebService(content: PassContent): void {
  // Apple: the authenticationToken "must be 16 characters or longer".
  if (content.authenticationToken.length < 16) {
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

/** Apple: date fields (dateStyle/timeStyle) need an ISO 8601 date value; number formats need a number value. */
function checkFieldValue(field: JsonObject, where: string, value: unknown): void {
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new InvalidError(`${where}: a field value must be a string or a number`);
  }
  if ('dateStyle' in field || 'timeStyle' in field) {
    if (typeof value !== 'string' || !isW3cDate(value)) {
      throw new InvalidError(
        `${where}: a date field (it has dateStyle/timeStyle) needs an ISO 8601 date-time with a time zone, got ${JSON.stringify(value)}`,
      );
    }
  }
  if (('currencyCode' in field || 'numberStyle' in field) && typeof value !== 'number') {
    throw new InvalidError(
      `${where}: a number field (it has currencyCode/numberStyle) needs a JSON number, got ${JSON.stringify(value)}`,
    );
  }
}

// ---------- Wallet's rules on the final pass.json ----------

/** Throws InvalidError naming the first rule of Apple's pass.json reference that the pass breaks. */
function checkWalletRules(passJson: JsonObject, style: PassStyle): void {
  // Apple: description and organizationName are required (description is read by VoiceOver).
  for (const key of ['description', 'organizationName']) {
    const value = passJson[key];
    if (typeof value !== 'string' || value === '') {
      throw new InvalidError(`pass.json ${key} is required (a non-empty string)`);
    }
  }
  // The template's own top-level keys obey the same types as admin overrides (colors, dates, barcodes, …).
  const overridable = Object.fromEntries(
    Object.entries(passJson).filter(([key]) => OVERRIDE_KEYS.includes(key)),
  );
  parseOrInvalid(passOverridesSchema, overridable, 'pass.json');
  checkSemanticDates(passJson.semantics);
  if (style === 'boardingPass') checkTransitType(passJson.boardingPass);
  for (const { arrayName, index, field } of styleFields(passJson, style)) {
    checkTemplateField(field as JsonObject, `pass.json ${style}.${arrayName}[${index}]`);
  }
}

/** Apple: a boarding pass must say how the passenger travels. */
function checkTransitType(dictionary: unknown): void {
  const transitType = isRecord(dictionary) ? dictionary.transitType : undefined;
  if (typeof transitType !== 'string' || !TRANSIT_TYPES.includes(transitType)) {
    throw new InvalidError(
      `pass.json boardingPass.transitType is ${transitType === undefined ? 'missing' : JSON.stringify(transitType)}; Wallet requires one of ${TRANSIT_TYPES.join(', ')} on boarding passes`,
    );
  }
}

function checkTemplateField(field: JsonObject, where: string): void {
  const label = `${where} (key "${String(field.key)}")`;
  // Apple: value is required in every field dictionary.
  if (!('value' in field)) throw new InvalidError(`${label}: value is required`);
  checkFieldValue(field, label, field.value);
  if (field.changeMessage !== undefined) {
    if (typeof field.changeMessage !== 'string' || !field.changeMessage.includes('%@')) {
      throw new InvalidError(
        `${label}: changeMessage must contain %@ (Wallet replaces it with the new value)`,
      );
    }
  }
}

/** Apple: semantic dates are ISO 8601 with a time zone, like every other date of a pass. */
function checkSemanticDates(semantics: unknown): void {
  if (!isRecord(semantics)) return;
  for (const [key, value] of Object.entries(semantics)) {
    if (key.endsWith('Date') && (typeof value !== 'string' || !isW3cDate(value))) {
      throw new InvalidError(`pass.json semantics.${key}: must be an ISO 8601 date-time with a time zone`);
    }
  }
}

// ---------- passkit-generator's validation, and the bundle's files ----------

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

/** Localisations: `<lang>.lproj/pass.strings`, which passkit-generator takes out of its file list to parse. */
const PASS_STRINGS = /^[^/]+\.lproj\/pass\.strings$/;
const PERSONALIZATION_FILE = /(?:^|\/)personalization(?:\.json$|Logo)/;
const PERSONALIZATION_LOGO = /(?:^|\/)personalizationLogo(?:@\dx)?\.png$/;

/**
 * The bundle's files, from the template and passkit-generator's public getters only: the files it accepted
 * (`files`: no manifest or signature, personalization.json only when valid), pass.json as its validated `props`,
 * and every pass.strings as the template has it (passkit-generator would rewrite them from what its parser
 * understood).
 */
function bundleFiles(pass: PKPass, template: Template): BundleFile[] {
  const props = pass.props;
  const names = pass.files;
  // Apple: a pass can be personalised only with an NFC dictionary, personalization.json and personalizationLogo;
  // otherwise the personalisation files are left out.
  const personalizable =
    props.nfc !== undefined &&
    names.includes('personalization.json') &&
    names.some((name) => PERSONALIZATION_LOGO.test(name));
  const files: BundleFile[] = [];
  for (const name of names) {
    if (!personalizable && PERSONALIZATION_FILE.test(name)) continue;
    if (name === 'pass.json') {
      files.push(fileOf(name, Buffer.from(JSON.stringify(props)), false));
      continue;
    }
    const data = template.files[name];
    if (data === undefined)
      throw new Error(`passkit-generator kept "${name}", which the template does not have`);
    files.push(fileOf(name, data, true));
  }
  for (const [name, data] of Object.entries(template.files)) {
    if (PASS_STRINGS.test(name) && !names.includes(name)) files.push(fileOf(name, data, true));
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

/** passkit-generator ignores a pass.json it finds invalid, and strips keys and fields it does not know. */
function assertSignerKeeps(passJson: JsonObject, pass: PKPass, style: PassStyle): void {
  const kept = pass.props as unknown as JsonObject;
  if (!(style in kept)) {
    const key = findRefusedKey(passJson, style);
    throw new InvalidError(
      `pass.json ${key ?? '(unknown key)'}: refused by the signer (passkit-generator), which would drop the whole pass.json`,
    );
  }
  const lost = findLoss(passJson, kept, '');
  if (lost !== undefined) {
    throw new InvalidError(
      `pass.json ${lost.path}: the signer (passkit-generator) would ${lost.actual === undefined ? 'drop this value' : `change this value to ${JSON.stringify(lost.actual)}`}, so the signed pass would differ from the one asked for`,
    );
  }
}

/** Tries each top-level key alone with the style to find the one that makes passkit-generator refuse pass.json. */
function findRefusedKey(passJson: JsonObject, style: PassStyle): string | undefined {
  for (const key of Object.keys(passJson)) {
    const probe: JsonObject = { [style]: key === style ? passJson[style] : {}, [key]: passJson[key] };
    // passkit-generator wants webServiceURL and authenticationToken together.
    if (key === 'webServiceURL') probe.authenticationToken = passJson.authenticationToken;
    const kept = new PKPass({ 'pass.json': Buffer.from(JSON.stringify(probe)) })
      .props as unknown as JsonObject;
    if (!(style in kept)) return key;
  }
  return undefined;
}

/** The first path whose expected value is missing or different in `actual`; keys `actual` adds are fine. */
function findLoss(
  expected: unknown,
  actual: unknown,
  path: string,
): { path: string; actual: unknown } | undefined {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return { path, actual };
    for (const [index, item] of expected.entries()) {
      const key = isRecord(item) && typeof item.key === 'string' ? ` (key "${item.key}")` : '';
      const lost = findLoss(item, actual[index], `${path}[${index}]${key}`);
      if (lost !== undefined) return lost;
    }
    return undefined;
  }
  if (isRecord(expected)) {
    if (!isRecord(actual)) return { path, actual };
    for (const [key, value] of Object.entries(expected)) {
      if (value === undefined) continue;
      const lost = findLoss(value, actual[key], path === '' ? key : `${path}.${key}`);
      if (lost !== undefined) return lost;
    }
    return undefined;
  }
  if (expected === actual || sameInstant(expected, actual)) return undefined;
  return { path, actual };
}

/** passkit-generator rewrites dates to UTC (2026-07-22T12:25:00.000Z); the same instant is the same pass. */
function sameInstant(expected: unknown, actual: unknown): boolean {
  return (
    typeof expected === 'string' &&
    typeof actual === 'string' &&
    isW3cDate(expected) &&
    Date.parse(expected) === Date.parse(actual)
  );
}
