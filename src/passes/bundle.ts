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
} from './pass-content.js';
import type { SigningIdentity } from './signing-identity.js';
import { isRecord, type PassStyle, styleFields, type Template } from './templates.js';

/*
 * Template + content → pass.json → signed .pkpass. The pass.json is built here (pure, testable) and handed to
 * passkit-generator only to be zipped and signed. passkit-generator validates pass.json with Joi and silently
 * drops what it does not like (a key, a field, or the whole file), so every bundle is checked to carry exactly
 * the pass.json built here; any loss becomes an InvalidError naming the key instead of a different pass.
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

const TRANSIT_TYPES = [
  'PKTransitTypeAir',
  'PKTransitTypeBoat',
  'PKTransitTypeBus',
  'PKTransitTypeGeneric',
  'PKTransitTypeTrain',
];

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

/** The signed .pkpass. Throws InvalidError if Wallet or the signer would refuse or alter the pass. */
export async function buildSignedBundle(content: PassContent, identity: SigningIdentity): Promise<Buffer> {
  const passJson = buildPassJson(content, identity);
  checkWalletRules(passJson, content.template.style);
  const pass = createPkPass(content.template, passJson, identity);
  assertSignerKeeps(passJson, pass, content.template.style);
  return pass.getAsBuffer();
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

// ---------- signing through passkit-generator ----------

/** In-memory buffers only: the template's files were read once at start. */
function createPkPass(template: Template, passJson: JsonObject, identity?: SigningIdentity): PKPass {
  const buffers = { ...template.files, 'pass.json': Buffer.from(JSON.stringify(passJson)) };
  if (identity === undefined) return new PKPass(buffers);
  return new PKPass(buffers, {
    wwdr: identity.wwdr,
    signerCert: identity.signerCert,
    signerKey: identity.signerKey,
    ...(identity.signerKeyPassphrase === undefined
      ? {}
      : { signerKeyPassphrase: identity.signerKeyPassphrase }),
  });
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
