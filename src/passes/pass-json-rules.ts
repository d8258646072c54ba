import { PKPass } from 'passkit-generator';
import { InvalidError } from '../errors.js';
import { isRecord } from '../json.js';
import { FIELD_ARRAYS, PASS_STYLES } from './templates.js';

/*
 * The pass.json rules, in one place: the admin API's input schemas (pass-content.ts), the bundle builder before
 * signing and `validate` all take them from here.
 *
 * The maintained library's rules come first: passkit-generator validates a pass.json with its Joi schemas when it
 * reads one, so Apple's new keys arrive with a dependency update. It does not export those schemas (3.6.1 exports
 * PKPass, PassType and types only), so they are applied through its documented import of pass.json, and what it
 * refuses or alters is reported by key (libraryProblem). On top sit Apple's rules, each citing Apple's pass.json
 * reference (developer.apple.com/documentation/walletpasses/pass): those the library misses (rgb() colors only,
 * dates with a time zone, the required keys, formatVersion 1, one style, a transitType on boarding passes, %@ in
 * change messages, appLaunchURL with its app), and the few it also enforces, because `validate` checks any .pkpass,
 * signed by whatever tool, and cannot lean on the library.
 */

type Json = Record<string, unknown>;

const REFERENCE = "Apple's pass.json reference";

// ---------- Apple's values, for the admin schemas and the rules below ----------

/** Apple: transitType, required on a boarding pass. */
export const TRANSIT_TYPES = [
  'PKTransitTypeAir',
  'PKTransitTypeBoat',
  'PKTransitTypeBus',
  'PKTransitTypeGeneric',
  'PKTransitTypeTrain',
] as const;

/** Apple (Pass.Barcodes): the formats Wallet supports. Code128 is not shown on Apple Watch. */
export const BARCODE_FORMATS = [
  'PKBarcodeFormatQR',
  'PKBarcodeFormatPDF417',
  'PKBarcodeFormatAztec',
  'PKBarcodeFormatCode128',
] as const;

/** Keys the server sets in every pass, whatever the template or the admin says. */
export const IDENTITY_KEYS = [
  'serialNumber',
  'authenticationToken',
  'webServiceURL',
  'passTypeIdentifier',
  'teamIdentifier',
  'formatVersion',
] as const;

/** The top-level keys an admin may set per pass (overrides): Apple's keys a pass's owner chooses. */
export const OVERRIDE_KEYS = [
  'description',
  'organizationName',
  'logoText',
  'backgroundColor',
  'foregroundColor',
  'labelColor',
  'barcodes',
  'relevantDate',
  'relevantDates',
  'expirationDate',
  'voided',
  'locations',
  'beacons',
  'maxDistance',
  'groupingIdentifier',
  'sharingProhibited',
  'suppressStripShine',
  'userInfo',
  'nfc',
  'semantics',
  'appLaunchURL',
  'associatedStoreIdentifiers',
] as const;

/** Apple: description (read by VoiceOver), organizationName and the identity keys are required. */
const REQUIRED_TEXT = [
  'description',
  'organizationName',
  'passTypeIdentifier',
  'serialNumber',
  'teamIdentifier',
];

/** Apple: the authenticationToken "must be 16 characters or longer". */
export const MIN_AUTHENTICATION_TOKEN_LENGTH = 16;

/** Apple: colors are "specified as a CSS-style RGB triple, such as rgb(23, 187, 82)". Wallet ignores other notations. */
const RGB_PATTERN = /^rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)$/;
export function isRgbColor(value: unknown): boolean {
  const match = typeof value === 'string' ? RGB_PATTERN.exec(value) : null;
  return match?.slice(1).every((channel) => Number(channel) <= 255) === true;
}

/**
 * Apple: dates are W3C (ISO 8601) date-times with a time zone, e.g. 2026-07-22T14:25-08:00. Without a time zone the
 * instant depends on whoever reads it, so it is refused.
 */
const W3C_DATE_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;
export function isW3cDate(value: unknown): value is string {
  return typeof value === 'string' && W3C_DATE_PATTERN.test(value) && !Number.isNaN(Date.parse(value));
}

/** Apple: changeMessage "must contain the escape %@, which is replaced with the field's new value". */
export function hasValueEscape(changeMessage: string): boolean {
  return changeMessage.includes('%@');
}

/** Apple: "If [appLaunchURL] is present, the associatedStoreIdentifiers key must also be present." */
export function namesItsApp(pass: { appLaunchURL?: unknown; associatedStoreIdentifiers?: unknown }): boolean {
  return pass.appLaunchURL === undefined || pass.associatedStoreIdentifiers !== undefined;
}

/** Apple: a field with dateStyle or timeStyle shows a date, so its value is one. */
export function isDateField(field: Json): boolean {
  return 'dateStyle' in field || 'timeStyle' in field;
}

/**
 * Apple: a field value is a string or a number; currencyCode and numberStyle format a number only. The JSON type
 * matters because Wallet formats numbers only when value is a number.
 */
export function fieldValueProblem(field: Json, value: unknown): string | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') {
    return `a field value must be a string or a number, got ${describe(value)}`;
  }
  if (('currencyCode' in field || 'numberStyle' in field) && typeof value !== 'number') {
    return `a number field (it has currencyCode/numberStyle) needs a JSON number, got ${JSON.stringify(value)}`;
  }
  return undefined;
}

// ---------- the rules on a whole pass.json ----------

const PASS_JSON_RULES = {
  requiredKeys: 'pass.json/required-keys',
  types: 'pass.json/types',
  formatVersion: 'pass.json/formatVersion',
  style: 'pass.json/style',
  fields: 'pass.json/fields',
  fieldKeys: 'pass.json/unique-field-keys',
  dates: 'pass.json/dates',
  colors: 'pass.json/colors',
  barcodes: 'pass.json/barcodes',
  webService: 'pass.json/webServiceURL-with-authenticationToken',
  https: 'pass.json/webServiceURL-https',
  tokenLength: 'pass.json/authenticationToken-length',
  appLaunch: 'pass.json/appLaunchURL-with-associatedStoreIdentifiers',
} as const;
const R = PASS_JSON_RULES;

/** One rule's result, in the shape of the CLI's findings (src/cli/findings.ts). */
export interface RuleFinding {
  status: 'pass' | 'warn' | 'fail';
  rule: string;
  detail: string;
  fix?: string;
  why?: string;
}

/** A broken rule; a warning does not stop the server from signing. */
interface Problem {
  detail: string;
  warning?: boolean;
  fix?: string;
}

interface FieldAt {
  where: string;
  field: unknown;
  arrayProblem?: string;
}

interface PassJsonView {
  passJson: Json;
  styles: string[];
  fields: FieldAt[];
}

interface Rule {
  id: string;
  /** What holds when there is no problem; undefined when the rule does not apply to this pass. */
  holds(view: PassJsonView): string | undefined;
  problems(view: PassJsonView): (string | Problem)[];
  fix: string;
  why: string;
}

const OPTIONAL_TYPES: Record<string, 'string' | 'boolean' | 'number' | 'object' | 'array'> = {
  logoText: 'string',
  groupingIdentifier: 'string',
  appLaunchURL: 'string',
  voided: 'boolean',
  sharingProhibited: 'boolean',
  suppressStripShine: 'boolean',
  maxDistance: 'number',
  userInfo: 'object',
  semantics: 'object',
  nfc: 'object',
  associatedStoreIdentifiers: 'array',
  locations: 'array',
  beacons: 'array',
  barcodes: 'array',
  relevantDates: 'array',
};
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const HTTPS_FIX =
  'Serve the web service over https (set PUBLIC_URL=https://…, behind a TLS-terminating proxy).';

const RULES: Rule[] = [
  {
    id: R.requiredKeys,
    holds: () => `${REQUIRED_TEXT.join(', ')} are present`,
    problems: ({ passJson }) =>
      REQUIRED_TEXT.filter((key) => typeof passJson[key] !== 'string' || passJson[key] === '').map(
        (key) => `${key} is required (a non-empty string); it is ${describe(passJson[key])}`,
      ),
    fix: 'Add the missing keys to pass.json (description is what VoiceOver reads).',
    why: `${REFERENCE}: these keys are required; Wallet does not install a pass without them.`,
  },
  {
    id: R.types,
    holds: () => 'top-level keys have the types Apple documents',
    problems: ({ passJson }) =>
      Object.entries(OPTIONAL_TYPES)
        .filter(([key, type]) => passJson[key] !== undefined && typeOf(passJson[key]) !== type)
        .map(([key, type]) => `${key} is ${describe(passJson[key])}; it must be a ${type}`),
    fix: 'Give each key the JSON type the reference documents.',
    why: `${REFERENCE}: Wallet refuses a pass.json whose keys have other types.`,
  },
  {
    id: R.formatVersion,
    holds: () => 'formatVersion is 1',
    problems: ({ passJson }) =>
      passJson.formatVersion === 1 ? [] : [`formatVersion is ${describe(passJson.formatVersion)}`],
    fix: 'Set "formatVersion": 1 (the number, not a string).',
    why: `${REFERENCE}: formatVersion "must be 1".`,
  },
  {
    id: R.style,
    holds: ({ styles }) => `one style: ${styles[0] ?? ''}`,
    problems: styleProblems,
    fix: `Keep exactly one of ${PASS_STYLES.join(', ')} (boarding passes also need a transitType).`,
    why: `${REFERENCE}: the style key decides the layout; a pass with none or several does not install.`,
  },
  {
    id: R.fields,
    holds: ({ fields }) => `${fields.length} fields, each with a key and a value`,
    problems: ({ fields }) => fields.flatMap(fieldProblems),
    fix: 'Give every field dictionary a string key and a string or number value (a number with currencyCode or numberStyle), and put %@ in every changeMessage.',
    why: `${REFERENCE}: key and value are required in every field dictionary; a changeMessage "must contain the escape %@".`,
  },
  {
    id: R.fieldKeys,
    holds: () => 'field keys are unique',
    problems: duplicateKeyProblems,
    fix: 'Rename one of the fields so that every key is unique within the pass.',
    why: `${REFERENCE}: "The key must be unique within the scope of the entire pass"; Wallet refuses duplicates.`,
  },
  {
    id: R.dates,
    holds: (view) => `${datesOf(view).length} dates, all W3C date-times with a time zone`,
    problems: (view) =>
      datesOf(view)
        .filter(([, value]) => !isW3cDate(value))
        .map(([where, value]) => `${where} is ${describe(value)}; it needs a W3C date-time with a time zone`),
    fix: 'Write dates as 2026-07-22T14:25:00+02:00 (or …Z).',
    why: `${REFERENCE}: dates are W3C (ISO 8601) date-times; without a time zone Wallet refuses the pass or shows the wrong time.`,
  },
  {
    id: R.colors,
    holds: ({ passJson }) => {
      const colors = colorKeys(passJson);
      return colors.length === 0 ? 'no colors set' : `${colors.join(', ')} are rgb() triples`;
    },
    problems: ({ passJson }) =>
      colorKeys(passJson)
        .filter((key) => !isRgbColor(passJson[key]))
        .map((key) => `${key} is ${describe(passJson[key])}; it must be rgb(r, g, b)`),
    fix: 'Write colors as CSS rgb triples, e.g. "rgb(23, 187, 82)" (not #17bb52).',
    why: `${REFERENCE}: colors are "CSS-style RGB triples"; Wallet ignores hex and names, or refuses the pass.`,
  },
  {
    id: R.barcodes,
    holds: ({ passJson }) => {
      const count = barcodesOf(passJson).length;
      return count === 0 ? 'no barcodes' : `${count} barcode(s) well formed`;
    },
    problems: ({ passJson }) =>
      barcodesOf(passJson).flatMap(([where, barcode]) => barcodeProblems(where, barcode)),
    fix: `Give each barcode a format (${BARCODE_FORMATS.join(', ')}), a message and a messageEncoding such as "iso-8859-1".`,
    why: `${REFERENCE}: format, message and messageEncoding are required in a barcode dictionary.`,
  },
  {
    id: R.webService,
    holds: ({ passJson }) =>
      passJson.webServiceURL === undefined && passJson.authenticationToken === undefined
        ? 'no web service: the pass is never updated (that is allowed)'
        : 'webServiceURL and authenticationToken are both set',
    problems: ({ passJson }) => {
      const [url, token] = [passJson.webServiceURL, passJson.authenticationToken];
      if ((url === undefined) === (token === undefined)) return [];
      return [
        url === undefined
          ? 'authenticationToken is set but webServiceURL is missing'
          : 'webServiceURL is set but authenticationToken is missing',
      ];
    },
    fix: 'Set both webServiceURL and authenticationToken, or neither.',
    why: `${REFERENCE}: webServiceURL and authenticationToken go together; with one alone the pass does not install.`,
  },
  {
    id: R.https,
    holds: ({ passJson }) =>
      hasWebService(passJson)
        ? `webServiceURL is https (${parseUrl(passJson.webServiceURL)?.origin})`
        : undefined,
    problems: ({ passJson }) => httpsProblems(passJson.webServiceURL),
    fix: HTTPS_FIX,
    why: 'Apple: the web service must use HTTPS; Wallet on a device ignores an http webServiceURL (no registration, no updates).',
  },
  {
    id: R.tokenLength,
    holds: ({ passJson }) =>
      hasWebService(passJson)
        ? `authenticationToken has ${String(passJson.authenticationToken).length} characters`
        : undefined,
    problems: ({ passJson }) => {
      const token = passJson.authenticationToken;
      if (typeof token === 'string' && token.length >= MIN_AUTHENTICATION_TOKEN_LENGTH) return [];
      return [
        `authenticationToken is ${typeof token === 'string' ? `${token.length} characters long` : describe(token)}`,
      ];
    },
    fix: 'Use a random token of at least 16 characters (the server generates 32).',
    why: `${REFERENCE}: the authenticationToken "must be 16 characters or longer"; Wallet refuses shorter ones.`,
  },
  {
    id: R.appLaunch,
    holds: ({ passJson }) =>
      passJson.appLaunchURL === undefined
        ? undefined
        : 'appLaunchURL names its app (associatedStoreIdentifiers)',
    problems: ({ passJson }) =>
      namesItsApp(passJson) ? [] : ['appLaunchURL is set without associatedStoreIdentifiers'],
    fix: 'Add associatedStoreIdentifiers (the App Store id of the app to launch), or remove appLaunchURL.',
    why: `${REFERENCE}: "If [appLaunchURL] is present, the associatedStoreIdentifiers key must also be present."`,
  },
];

/** Every rule on a pass.json: one ✓ per rule that holds, or one finding per problem. */
export function checkPassJson(passJson: Json): RuleFinding[] {
  const view = viewOf(passJson);
  return RULES.flatMap((rule): RuleFinding[] => {
    const holds = rule.holds(view);
    if (holds === undefined) return [];
    const problems = rule.problems(view).map(asProblem);
    if (problems.length === 0) return [{ status: 'pass', rule: rule.id, detail: holds }];
    return problems.map(({ detail, warning, fix }) => ({
      status: warning === true ? 'warn' : 'fail',
      rule: rule.id,
      detail,
      fix: fix ?? rule.fix,
      why: rule.why,
    }));
  });
}

/**
 * Throws InvalidError naming the first rule the pass.json to be signed breaks: first what passkit-generator would
 * refuse or alter, then Apple's rules on what it keeps. The server's own webServiceURL may be http (local testing
 * is the operator's choice), so only that rule is not enforced here.
 */
export function assertSignable(passJson: Json, kept: Json, style: string): void {
  const lost = libraryProblem(passJson, kept, style);
  if (lost !== undefined) throw new InvalidError(lost);
  const view = viewOf(kept);
  for (const rule of RULES) {
    if (rule.id === R.https || rule.holds(view) === undefined) continue;
    const problem = rule
      .problems(view)
      .map(asProblem)
      .find(({ warning }) => warning !== true);
    if (problem !== undefined) throw new InvalidError(`pass.json ${problem.detail}`);
  }
}

function viewOf(passJson: Json): PassJsonView {
  const styles = PASS_STYLES.filter((name) => name in passJson);
  const fields = styles.length === 1 ? collectFields(passJson, styles[0] as string) : [];
  return { passJson, styles, fields };
}

function asProblem(problem: string | Problem): Problem {
  return typeof problem === 'string' ? { detail: problem } : problem;
}

function styleProblems({ passJson, styles }: PassJsonView): string[] {
  if (styles.length !== 1) {
    return [`found ${styles.length === 0 ? 'no style key' : styles.join(' and ')}; exactly one is required`];
  }
  const style = styles[0] as string;
  const dictionary = passJson[style];
  if (!isRecord(dictionary)) return [`${style} must be a dictionary`];
  if (style !== 'boardingPass') return [];
  // Apple: a boarding pass must say how the passenger travels.
  const transitType = dictionary.transitType;
  if (typeof transitType === 'string' && (TRANSIT_TYPES as readonly string[]).includes(transitType))
    return [];
  return [
    `boardingPass.transitType is ${describe(transitType)}; one of ${TRANSIT_TYPES.join(', ')} is required`,
  ];
}

function collectFields(passJson: Json, style: string): FieldAt[] {
  const dictionary = passJson[style];
  if (!isRecord(dictionary)) return [];
  const result: FieldAt[] = [];
  for (const arrayName of FIELD_ARRAYS) {
    const fields = dictionary[arrayName];
    if (fields === undefined) continue;
    if (!Array.isArray(fields)) {
      result.push({ where: `${style}.${arrayName}`, field: undefined, arrayProblem: 'must be an array' });
      continue;
    }
    fields.forEach((field: unknown, index) => {
      result.push({ where: `${style}.${arrayName}[${index}]`, field });
    });
  }
  return result;
}

function fieldProblems({ where, field, arrayProblem }: FieldAt): string[] {
  if (arrayProblem !== undefined) return [`${where} ${arrayProblem}`];
  if (!isRecord(field) || typeof field.key !== 'string' || field.key === '') {
    return [`${where} must be a dictionary with a non-empty string key`];
  }
  const label = `${where} (key "${field.key}")`;
  const problems: string[] = [];
  const valueProblem = fieldValueProblem(field, field.value);
  if (valueProblem !== undefined) problems.push(`${label}: ${valueProblem}`);
  const message = field.changeMessage;
  if (message !== undefined && (typeof message !== 'string' || !hasValueEscape(message))) {
    problems.push(`${label}: changeMessage must contain %@ (Wallet replaces it with the new value)`);
  }
  return problems;
}

function duplicateKeyProblems({ fields }: PassJsonView): string[] {
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const { where, field } of fields) {
    if (!isRecord(field) || typeof field.key !== 'string') continue;
    if (seen.has(field.key)) problems.push(`field key "${field.key}" is used again at ${where}`);
    seen.add(field.key);
  }
  return problems;
}

/** Every date of a pass that is present: top-level, relevantDates entries, date fields, semantic dates. */
function datesOf({ passJson, fields }: PassJsonView): [string, unknown][] {
  const dates: [string, unknown][] = [
    ['relevantDate', passJson.relevantDate],
    ['expirationDate', passJson.expirationDate],
  ];
  if (Array.isArray(passJson.relevantDates)) {
    passJson.relevantDates.forEach((entry: unknown, index) => {
      if (!isRecord(entry)) return;
      for (const key of ['startDate', 'endDate', 'relevantDate', 'date'])
        dates.push([`relevantDates[${index}].${key}`, entry[key]]);
    });
  }
  for (const { where, field } of fields) {
    if (isRecord(field) && isDateField(field)) dates.push([`${where}.value`, field.value]);
  }
  // Apple: semantic dates are ISO 8601 with a time zone, like every other date of a pass.
  if (isRecord(passJson.semantics)) {
    for (const [key, value] of Object.entries(passJson.semantics)) {
      if (key.endsWith('Date')) dates.push([`semantics.${key}`, value]);
    }
  }
  return dates.filter(([, value]) => value !== undefined);
}

function colorKeys(passJson: Json): string[] {
  return Object.keys(passJson).filter((key) => key.endsWith('Color'));
}

function barcodesOf(passJson: Json): [string, unknown][] {
  const barcodes: [string, unknown][] = [];
  if (Array.isArray(passJson.barcodes)) {
    passJson.barcodes.forEach((barcode: unknown, index) => {
      barcodes.push([`barcodes[${index}]`, barcode]);
    });
  }
  if (passJson.barcode !== undefined) barcodes.push(['barcode', passJson.barcode]);
  return barcodes;
}

function barcodeProblems(where: string, barcode: unknown): string[] {
  if (!isRecord(barcode)) return [`${where} must be a dictionary`];
  const problems: string[] = [];
  if (
    typeof barcode.format !== 'string' ||
    !(BARCODE_FORMATS as readonly string[]).includes(barcode.format)
  ) {
    problems.push(`${where}.format is ${describe(barcode.format)}`);
  }
  if (typeof barcode.message !== 'string') problems.push(`${where}.message is ${describe(barcode.message)}`);
  if (typeof barcode.messageEncoding !== 'string') {
    problems.push(`${where}.messageEncoding is ${describe(barcode.messageEncoding)}`);
  }
  return problems;
}

function hasWebService(passJson: Json): boolean {
  return passJson.webServiceURL !== undefined && passJson.authenticationToken !== undefined;
}

function parseUrl(url: unknown): URL | undefined {
  try {
    return new URL(String(url));
  } catch {
    return undefined;
  }
}

function httpsProblems(url: unknown): Problem[] {
  const parsed = parseUrl(url);
  if (parsed === undefined) {
    return [{ detail: `webServiceURL ${describe(url)} is not a URL`, fix: 'Set an absolute https:// URL.' }];
  }
  if (parsed.protocol === 'https:') return [];
  if (parsed.protocol === 'http:' && LOCAL_HOSTS.has(parsed.hostname)) {
    return [{ detail: `webServiceURL is ${parsed.origin}: fine for local testing only`, warning: true }];
  }
  return [{ detail: `webServiceURL is ${parsed.origin}, not https` }];
}

// ---------- passkit-generator's rules ----------

/**
 * What passkit-generator's schemas refuse or alter in `passJson`, given `kept`, the props it made of it (PKPass
 * props): it ignores a pass.json it finds invalid, and strips keys and fields it does not know.
 */
function libraryProblem(passJson: Json, kept: Json, style: string): string | undefined {
  if (!(style in kept)) {
    const refused = findRefusedKey(passJson, style);
    const says = refused?.warnings.length ? ` (it says: ${refused.warnings.join('; ')})` : '';
    return `pass.json ${refused?.key ?? '(unknown key)'}: refused by the signer (passkit-generator), which would drop the whole pass.json${says}`;
  }
  const lost = findLoss(passJson, kept, '');
  if (lost === undefined) return undefined;
  return `pass.json ${lost.path}: the signer (passkit-generator) would ${lost.actual === undefined ? 'drop this value' : `change this value to ${JSON.stringify(lost.actual)}`}, so the signed pass would differ from the one asked for`;
}

/**
 * Tries each top-level key alone with the style to find the one that makes passkit-generator refuse pass.json, and
 * what passkit-generator said about it.
 */
function findRefusedKey(passJson: Json, style: string): { key: string; warnings: string[] } | undefined {
  for (const key of Object.keys(passJson)) {
    const probe: Json = { [style]: key === style ? passJson[style] : {}, [key]: passJson[key] };
    // passkit-generator wants webServiceURL and authenticationToken together.
    if (key === 'webServiceURL') probe.authenticationToken = passJson.authenticationToken;
    const { pass, warnings } = quietPkPass({ 'pass.json': Buffer.from(JSON.stringify(probe)) });
    if (!(style in pass.props)) return { key, warnings };
  }
  return undefined;
}

/**
 * passkit-generator's PKPass of these files, and what the library said while making it. The one place it is made.
 *
 * passkit-generator console.warn()s each value its Joi schemas refuse (and then drops the value, which
 * libraryProblem finds): a plain-text line on stderr, outside the JSON log, from whichever thread signs. All its
 * checks run in PKPass's constructor, which is synchronous, so console.warn is taken over for exactly that call
 * (no other code can run meanwhile, and each worker thread has its own console): nothing reaches the process's
 * output, and what it said goes into the InvalidError that refuses the pass.
 */
export function quietPkPass(files: Record<string, Buffer>): { pass: PKPass; warnings: string[] } {
  const warnings: string[] = [];
  const { warn } = console;
  console.warn = (...parts: unknown[]) => {
    warnings.push(parts.map((part) => (part instanceof Error ? part.message : String(part))).join(' '));
  };
  try {
    return { pass: new PKPass(files), warnings };
  } finally {
    console.warn = warn;
  }
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
  return isW3cDate(expected) && typeof actual === 'string' && Date.parse(expected) === Date.parse(actual);
}

// ---------- helpers ----------

function typeOf(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  return typeof value;
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}
