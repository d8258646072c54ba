import { z } from 'zod';
import { InvalidError } from '../errors.js';
import { storable, storableText } from '../storable-text.js';
import {
  BARCODE_FORMATS,
  hasValueEscape,
  type IDENTITY_KEYS,
  isRgbColor,
  isW3cDate,
  namesItsApp,
  OVERRIDE_KEYS,
} from './pass-json-rules.js';
import type { Template } from './templates.js';

/*
 * What an admin may put into a pass, as zod schemas: the admin routes validate with them and OpenAPI is
 * generated from them. Types follow Apple's pass.json reference (developer.apple.com/documentation/walletpasses/pass);
 * the rules on values (colors, dates, barcode formats, change messages, the keys the server sets) are Apple's,
 * kept in pass-json-rules.ts with the other pass.json rules. Every string is storable text (src/storable-text.ts:
 * no U+0000, well-formed Unicode), so what PostgreSQL cannot store is a 400 naming the field.
 */

const FIELD_KEY_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const fieldKeySchema = z
  .string()
  .regex(FIELD_KEY_PATTERN, 'a field key is 1-64 letters, digits, "_", "-" or "."');

/** Apple: a field value is a localizable string, an ISO 8601 date (as a string), or a number. */
export const fieldValueSchema = z.union([storableText().max(2000), z.number()]);

export const fieldValuesSchema = z
  .record(fieldKeySchema, fieldValueSchema)
  .refine((values) => Object.keys(values).length <= 64, 'at most 64 field values');

export const changeMessagesSchema = z
  .record(
    fieldKeySchema,
    storableText()
      .min(1)
      .max(256)
      .refine(hasValueEscape, 'must contain %@ (Wallet replaces it with the new value)')
      .meta({
        description: "Shown when the field's value changes; must contain %@, which Wallet replaces with it",
        pattern: '%@',
      }),
  )
  .refine((messages) => Object.keys(messages).length <= 64, 'at most 64 change messages');

/** An lproj folder's language: a language code, then script or region subtags (en, de-CH, zh-Hans, pt_BR). */
const LANGUAGE_PATTERN = /^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,3}$/;

/**
 * A pass's own localisations, by language: `pass.strings` keys and values, merged with the template's
 * `<lang>.lproj/pass.strings` (src/signing/pass-strings.ts). Wallet looks up a pass.json string (a label, a value,
 * the description) as a key of the device language's file.
 */
export const passStringsSchema = z
  .record(
    z.string().regex(LANGUAGE_PATTERN, 'a language is a code such as en, de-CH, zh-Hans or pt_BR'),
    z
      .record(storableText().min(1).max(256), storableText().max(2000))
      .refine((entries) => Object.keys(entries).length <= 500, 'at most 500 strings per language'),
  )
  .refine((languages) => Object.keys(languages).length <= 50, 'at most 50 languages')
  // Each language is a folder of the bundle: two that differ only in case would be one folder where Wallet unzips.
  .refine(
    (languages) =>
      new Set(Object.keys(languages).map((language) => language.toLowerCase())).size ===
      Object.keys(languages).length,
    'two languages differ only in case',
  )
  .meta({ description: 'pass.strings entries by language, e.g. {"de": {"Seat": "Platz"}}' });

// The document's pattern says what isRgbColor accepts (each channel 0-255, ECMA-262's \s), for other clients.
const colorSchema = z
  .string()
  .refine(isRgbColor, 'must be a CSS-style RGB triple such as rgb(23, 187, 82)')
  .meta({
    description: 'A CSS-style RGB triple, e.g. rgb(23, 187, 82)',
    pattern:
      '^rgb\\(\\s*(25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2})\\s*,\\s*(25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2})' +
      '\\s*,\\s*(25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2})\\s*\\)$',
  });

const dateSchema = z
  .string()
  .refine(isW3cDate, 'must be an ISO 8601 date-time with a time zone, e.g. 2026-07-22T14:25:00+02:00')
  .meta({
    description:
      'A W3C (ISO 8601) date-time with a time zone, seconds optional, e.g. 2026-07-22T14:25:00+02:00',
    pattern:
      '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})$',
  });

const text = (max: number) => storableText().min(1).max(max);

/** Apple's barcode dictionary. */
export const barcodeSchema = z.strictObject({
  format: z.enum(BARCODE_FORMATS),
  message: text(2000),
  // Apple: messageEncoding is required; iso-8859-1 is the usual choice.
  messageEncoding: text(64).default('iso-8859-1'),
  altText: text(256).optional(),
});

export const locationSchema = z.strictObject({
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  altitude: z.number().optional(),
  relevantText: text(256).optional(),
});

export const beaconSchema = z.strictObject({
  proximityUUID: z.uuid(),
  major: z.number().int().min(0).max(65535).optional(),
  minor: z.number().int().min(0).max(65535).optional(),
  relevantText: text(256).optional(),
});

/**
 * Apple (iOS 18+): relevantDates entries are an interval (startDate + endDate) or a single date. iOS 18 spelled
 * the single date `relevantDate`, iOS 26 `date`; both are written so every version understands it.
 */
export const relevantDateEntrySchema = z.union([
  z.strictObject({ startDate: dateSchema, endDate: dateSchema }),
  z.strictObject({ relevantDate: dateSchema, date: dateSchema.optional() }),
  z.strictObject({ date: dateSchema }).transform(({ date }) => ({ date, relevantDate: date })),
]);

export const nfcSchema = z.strictObject({
  // Apple: "The payload … up to 64 bytes".
  message: text(64),
  encryptionPublicKey: storableText().min(1),
  requiresAuthentication: z.boolean().optional(),
});

/*
 * Any JSON value (what z.json() accepts, with storable strings and keys), spelled out so that it can carry an id:
 * OpenAPI needs a named component for a recursive schema, and z.json()'s inner recursion could not be named.
 */
type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
const jsonValue: z.ZodType<JsonValue> = z
  .lazy(() =>
    z.union([
      storableText(),
      z.number(),
      z.boolean(),
      z.null(),
      z.array(jsonValue),
      z.record(storableText(), jsonValue),
    ]),
  )
  .meta({ id: 'JsonValue', description: 'Any JSON value' });

/**
 * How deep userInfo and semantics may nest: the object itself is level 1, each object or array in it one more.
 * zod validates a recursive schema by recursion, so about 2,000 levels overflow its stack (a 500); the depth is
 * counted first, without recursion, and anything deeper is a 400. Apple's semantic tags nest 3 levels.
 */
export const maxJsonDepth = 32;

/** Whether `value` nests objects and arrays more than `limit` levels deep; walked with a stack, not recursion. */
function nestsDeeperThan(value: unknown, limit: number): boolean {
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (typeof next.value !== 'object' || next.value === null) continue;
    if (next.depth > limit) return true;
    for (const child of Object.values(next.value)) pending.push({ value: child, depth: next.depth + 1 });
  }
  return false;
}

const jsonObject = z.preprocess(
  (value, context) => {
    if (nestsDeeperThan(value, maxJsonDepth)) {
      context.addIssue({ code: 'custom', message: `must not nest more than ${maxJsonDepth} levels deep` });
    }
    return value;
  },
  z.record(storableText(), jsonValue),
);

const setByServer = (key: string) =>
  z.never({ error: `${key} is set by the server for every pass; remove it from the overrides` }).optional();

const overrideShape = {
  description: text(256).optional(),
  organizationName: text(128).optional(),
  logoText: text(128).optional(),
  backgroundColor: colorSchema.optional(),
  foregroundColor: colorSchema.optional(),
  labelColor: colorSchema.optional(),
  barcodes: z.array(barcodeSchema).max(10).optional(),
  // Apple: relevantDate is deprecated since iOS 18 in favour of relevantDates; both are accepted.
  relevantDate: dateSchema.optional(),
  relevantDates: z.array(relevantDateEntrySchema).max(10).optional(),
  expirationDate: dateSchema.optional(),
  voided: z.boolean().optional(),
  // Apple: Wallet uses at most 10 locations and 10 beacons.
  locations: z.array(locationSchema).max(10).optional(),
  beacons: z.array(beaconSchema).max(10).optional(),
  maxDistance: z.number().positive().optional(),
  groupingIdentifier: text(128).optional(),
  sharingProhibited: z.boolean().optional(),
  suppressStripShine: z.boolean().optional(),
  userInfo: jsonObject.optional(),
  nfc: nfcSchema.optional(),
  semantics: jsonObject.optional(),
  appLaunchURL: storable(z.url().max(2048)).optional(),
  associatedStoreIdentifiers: z.array(z.number().int().positive()).max(10).optional(),
  // Listed so that the error says why they are refused (a strict object would only say "unrecognized key").
  serialNumber: setByServer('serialNumber'),
  authenticationToken: setByServer('authenticationToken'),
  webServiceURL: setByServer('webServiceURL'),
  passTypeIdentifier: setByServer('passTypeIdentifier'),
  teamIdentifier: setByServer('teamIdentifier'),
  formatVersion: setByServer('formatVersion'),
} satisfies Record<(typeof OVERRIDE_KEYS | typeof IDENTITY_KEYS)[number], z.ZodType>;

export const passOverridesSchema = z
  .strictObject(overrideShape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown key ${issue.keys.map((key) => `"${key}"`).join(', ')}; allowed keys are ${OVERRIDE_KEYS.join(', ')}`
        : undefined,
  })
  .refine(namesItsApp, {
    message: 'appLaunchURL needs associatedStoreIdentifiers (Apple: the app to launch must be named)',
    path: ['appLaunchURL'],
  });

export type FieldValues = z.infer<typeof fieldValuesSchema>;
export type PassOverrides = z.infer<typeof passOverridesSchema>;
export type ChangeMessages = z.infer<typeof changeMessagesSchema>;
export type PassStrings = z.infer<typeof passStringsSchema>;

/** Parses with a schema or throws an InvalidError whose message names each offending key under `label`. */
export function parseOrInvalid<S extends z.ZodType>(schema: S, value: unknown, label: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = [label, ...issue.path.map(String)].join('.');
    // A refused record key: zod's own message is only "Invalid key in record"; the key's issues say why.
    const message =
      issue.code === 'invalid_key' ? issue.issues.map((inner) => inner.message).join(', ') : issue.message;
    return `${path}: ${message}`;
  });
  throw new InvalidError(problems.join('; '));
}

export function checkFieldKeys(template: Template, keys: Iterable<string>): void {
  const known = new Set(template.fieldKeys);
  for (const key of keys) {
    if (!known.has(key)) {
      throw new InvalidError(
        `unknown field key "${key}" for template "${template.name}"; its field keys are ${template.fieldKeys.join(', ')}`,
      );
    }
  }
}
