import { colorSchema, isW3cDate, TRANSIT_TYPES } from '../passes/pass-content.js';
import { FIELD_ARRAYS, isRecord, PASS_STYLES } from '../passes/templates.js';
import { type Finding, fail, pass, warn } from './findings.js';

/*
 * pass.json against Apple's reference (developer.apple.com/documentation/walletpasses/pass). Each rule yields
 * one ✓ when it holds, or one finding per problem.
 */

type Json = Record<string, unknown>;

const REQUIRED_TEXT = [
  'description',
  'organizationName',
  'passTypeIdentifier',
  'serialNumber',
  'teamIdentifier',
];
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
const BARCODE_FORMATS = [
  'PKBarcodeFormatQR',
  'PKBarcodeFormatPDF417',
  'PKBarcodeFormatAztec',
  'PKBarcodeFormatCode128',
];
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const REFERENCE = "Apple's pass.json reference";

export const PASS_JSON_RULES = {
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

function outcome(rule: string, problems: string[], okDetail: string, fix: string, why: string): Finding[] {
  if (problems.length === 0) return [pass(rule, okDetail)];
  return problems.map((problem) => fail(rule, problem, fix, why));
}

export function checkPassJson(passJson: Json): Finding[] {
  const style = PASS_STYLES.filter((name) => name in passJson);
  const fields = style.length === 1 ? collectFields(passJson, style[0] as string) : [];
  return [
    ...checkRequiredKeys(passJson),
    ...checkTypes(passJson),
    ...checkFormatVersion(passJson),
    ...checkStyle(passJson, style),
    ...checkFields(fields),
    ...checkUniqueKeys(fields),
    ...checkDates(passJson, fields),
    ...checkColors(passJson),
    ...checkBarcodes(passJson),
    ...checkWebService(passJson),
    ...checkAppLaunch(passJson),
  ];
}

function checkAppLaunch(passJson: Json): Finding[] {
  if (passJson.appLaunchURL === undefined) return [];
  return outcome(
    R.appLaunch,
    passJson.associatedStoreIdentifiers === undefined
      ? ['appLaunchURL is set without associatedStoreIdentifiers']
      : [],
    'appLaunchURL names its app (associatedStoreIdentifiers)',
    'Add associatedStoreIdentifiers (the App Store id of the app to launch), or remove appLaunchURL.',
    `${REFERENCE}: "If [appLaunchURL] is present, the associatedStoreIdentifiers key must also be present."`,
  );
}

function checkRequiredKeys(passJson: Json): Finding[] {
  const problems = REQUIRED_TEXT.filter(
    (key) => typeof passJson[key] !== 'string' || passJson[key] === '',
  ).map((key) => `${key} is ${describe(passJson[key])}; it must be a non-empty string`);
  return outcome(
    R.requiredKeys,
    problems,
    `${REQUIRED_TEXT.join(', ')} are present`,
    'Add the missing keys to pass.json (description is what VoiceOver reads).',
    `${REFERENCE}: these keys are required; Wallet does not install a pass without them.`,
  );
}

function checkTypes(passJson: Json): Finding[] {
  const problems: string[] = [];
  for (const [key, type] of Object.entries(OPTIONAL_TYPES)) {
    const value = passJson[key];
    if (value !== undefined && typeOf(value) !== type)
      problems.push(`${key} is ${describe(value)}; it must be a ${type}`);
  }
  return outcome(
    R.types,
    problems,
    'top-level keys have the types Apple documents',
    'Give each key the JSON type the reference documents.',
    `${REFERENCE}: Wallet refuses a pass.json whose keys have other types.`,
  );
}

function checkFormatVersion(passJson: Json): Finding[] {
  return outcome(
    R.formatVersion,
    passJson.formatVersion === 1 ? [] : [`formatVersion is ${describe(passJson.formatVersion)}`],
    'formatVersion is 1',
    'Set "formatVersion": 1 (the number, not a string).',
    `${REFERENCE}: formatVersion "must be 1".`,
  );
}

function checkStyle(passJson: Json, styles: string[]): Finding[] {
  const problems: string[] = [];
  if (styles.length !== 1) {
    problems.push(
      `found ${styles.length === 0 ? 'no style key' : styles.join(' and ')}; exactly one is required`,
    );
  } else if (!isRecord(passJson[styles[0] as string])) {
    problems.push(`${styles[0]} must be a dictionary`);
  } else if (styles[0] === 'boardingPass') {
    const transitType = (passJson.boardingPass as Json).transitType;
    if (typeof transitType !== 'string' || !TRANSIT_TYPES.includes(transitType)) {
      problems.push(
        `boardingPass.transitType is ${describe(transitType)}; one of ${TRANSIT_TYPES.join(', ')} is required`,
      );
    }
  }
  return outcome(
    R.style,
    problems,
    `one style: ${styles[0] ?? ''}`,
    `Keep exactly one of ${PASS_STYLES.join(', ')} (boarding passes also need a transitType).`,
    `${REFERENCE}: the style key decides the layout; a pass with none or several does not install.`,
  );
}

interface FieldAt {
  where: string;
  field: unknown;
  arrayProblem?: string;
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

function checkFields(fields: FieldAt[]): Finding[] {
  const problems: string[] = [];
  for (const { where, field, arrayProblem } of fields) {
    if (arrayProblem !== undefined) problems.push(`${where} ${arrayProblem}`);
    else if (!isRecord(field) || typeof field.key !== 'string' || field.key === '') {
      problems.push(`${where} must be a dictionary with a non-empty string key`);
    } else if (typeof field.value !== 'string' && typeof field.value !== 'number') {
      problems.push(
        `${where} (key "${field.key}") has value ${describe(field.value)}; a string or number is required`,
      );
    }
  }
  return outcome(
    R.fields,
    problems,
    `${fields.length} fields, each with a key and a value`,
    'Give every field dictionary a string key and a string or number value.',
    `${REFERENCE}: key and value are required in every field dictionary.`,
  );
}

function checkUniqueKeys(fields: FieldAt[]): Finding[] {
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const { where, field } of fields) {
    if (!isRecord(field) || typeof field.key !== 'string') continue;
    if (seen.has(field.key)) problems.push(`field key "${field.key}" is used again at ${where}`);
    seen.add(field.key);
  }
  return outcome(
    R.fieldKeys,
    problems,
    'field keys are unique',
    'Rename one of the fields so that every key is unique within the pass.',
    `${REFERENCE}: "The key must be unique within the scope of the entire pass"; Wallet refuses duplicates.`,
  );
}

function checkDates(passJson: Json, fields: FieldAt[]): Finding[] {
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
    if (isRecord(field) && ('dateStyle' in field || 'timeStyle' in field))
      dates.push([`${where}.value`, field.value]);
  }
  if (isRecord(passJson.semantics)) {
    for (const [key, value] of Object.entries(passJson.semantics)) {
      if (key.endsWith('Date')) dates.push([`semantics.${key}`, value]);
    }
  }
  const present = dates.filter(([, value]) => value !== undefined);
  const problems = present
    .filter(([, value]) => typeof value !== 'string' || !isW3cDate(value))
    .map(([where, value]) => `${where} is ${describe(value)}; it needs a W3C date-time with a time zone`);
  return outcome(
    R.dates,
    problems,
    `${present.length} dates, all W3C date-times with a time zone`,
    'Write dates as 2026-07-22T14:25:00+02:00 (or …Z).',
    `${REFERENCE}: dates are W3C (ISO 8601) date-times; without a time zone Wallet refuses the pass or shows the wrong time.`,
  );
}

function checkColors(passJson: Json): Finding[] {
  const colors = Object.entries(passJson).filter(([key]) => key.endsWith('Color'));
  const problems = colors
    .filter(([, value]) => !colorSchema.safeParse(value).success)
    .map(([key, value]) => `${key} is ${describe(value)}; it must be rgb(r, g, b)`);
  return outcome(
    R.colors,
    problems,
    colors.length === 0 ? 'no colors set' : `${colors.map(([key]) => key).join(', ')} are rgb() triples`,
    'Write colors as CSS rgb triples, e.g. "rgb(23, 187, 82)" (not #17bb52).',
    `${REFERENCE}: colors are "CSS-style RGB triples"; Wallet ignores hex and names, or refuses the pass.`,
  );
}

function checkBarcodes(passJson: Json): Finding[] {
  const barcodes: [string, unknown][] = [];
  if (Array.isArray(passJson.barcodes)) {
    passJson.barcodes.forEach((barcode: unknown, index) => {
      barcodes.push([`barcodes[${index}]`, barcode]);
    });
  }
  if (passJson.barcode !== undefined) barcodes.push(['barcode', passJson.barcode]);
  const problems: string[] = [];
  for (const [where, barcode] of barcodes) problems.push(...barcodeProblems(where, barcode));
  return outcome(
    R.barcodes,
    problems,
    barcodes.length === 0 ? 'no barcodes' : `${barcodes.length} barcode(s) well formed`,
    `Give each barcode a format (${BARCODE_FORMATS.join(', ')}), a message and a messageEncoding such as "iso-8859-1".`,
    `${REFERENCE}: format, message and messageEncoding are required in a barcode dictionary.`,
  );
}

function barcodeProblems(where: string, barcode: unknown): string[] {
  if (!isRecord(barcode)) return [`${where} must be a dictionary`];
  const problems: string[] = [];
  if (typeof barcode.format !== 'string' || !BARCODE_FORMATS.includes(barcode.format)) {
    problems.push(`${where}.format is ${describe(barcode.format)}`);
  }
  if (typeof barcode.message !== 'string') problems.push(`${where}.message is ${describe(barcode.message)}`);
  if (typeof barcode.messageEncoding !== 'string') {
    problems.push(`${where}.messageEncoding is ${describe(barcode.messageEncoding)}`);
  }
  return problems;
}

function checkWebService(passJson: Json): Finding[] {
  const url = passJson.webServiceURL;
  const token = passJson.authenticationToken;
  if (url === undefined && token === undefined) {
    return [pass(R.webService, 'no web service: the pass is never updated (that is allowed)')];
  }
  if (url === undefined || token === undefined) {
    const [has, lacks] =
      url === undefined ? ['authenticationToken', 'webServiceURL'] : ['webServiceURL', 'authenticationToken'];
    return [
      fail(
        R.webService,
        `${has} is set but ${lacks} is missing`,
        'Set both webServiceURL and authenticationToken, or neither.',
        `${REFERENCE}: webServiceURL and authenticationToken go together; with one alone the pass does not install.`,
      ),
    ];
  }
  return [
    pass(R.webService, 'webServiceURL and authenticationToken are both set'),
    checkHttps(url),
    checkToken(token),
  ];
}

function checkHttps(url: unknown): Finding {
  const why =
    'Apple: the web service must use HTTPS; Wallet on a device ignores an http webServiceURL (no registration, no updates).';
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    return fail(R.https, `webServiceURL ${describe(url)} is not a URL`, 'Set an absolute https:// URL.', why);
  }
  if (parsed.protocol === 'https:') return pass(R.https, `webServiceURL is https (${parsed.origin})`);
  const fix = 'Serve the web service over https (set PUBLIC_URL=https://…, behind a TLS-terminating proxy).';
  if (parsed.protocol === 'http:' && LOCAL_HOSTS.has(parsed.hostname)) {
    return warn(R.https, `webServiceURL is ${parsed.origin}: fine for local testing only`, fix, why);
  }
  return fail(R.https, `webServiceURL is ${parsed.origin}, not https`, fix, why);
}

function checkToken(token: unknown): Finding {
  if (typeof token === 'string' && token.length >= 16) {
    return pass(R.tokenLength, `authenticationToken has ${token.length} characters`);
  }
  return fail(
    R.tokenLength,
    `authenticationToken is ${typeof token === 'string' ? `${token.length} characters long` : describe(token)}`,
    'Use a random token of at least 16 characters (the server generates 32).',
    `${REFERENCE}: the authenticationToken "must be 16 characters or longer"; Wallet refuses shorter ones.`,
  );
}

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
