import type { Dirent } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRecord } from '../json.js';
import { applyOverride, convertModel } from './model-conversion.js';

/*
 * Templates are folders `MODELS_DIR/<name>.pass` in passkit-generator's model format: pass.json, images, and
 * optional `<lang>.lproj/` folders, each with an optional `<name>.override.json` beside it. They are read once at
 * start and kept in memory, so signing never touches the disk. A folder that cannot be used is reported as a
 * problem (with its path) and skipped, so one broken template does not stop the others.
 */

export type PassStyle = 'boardingPass' | 'coupon' | 'eventTicket' | 'generic' | 'storeCard';

export const PASS_STYLES: readonly PassStyle[] = [
  'boardingPass',
  'coupon',
  'eventTicket',
  'generic',
  'storeCard',
];

/** The field arrays of a style dictionary whose fields a pass may fill (Apple's five, plus iOS 18's additionalInfoFields). */
export const FIELD_ARRAYS = [
  'headerFields',
  'primaryFields',
  'secondaryFields',
  'auxiliaryFields',
  'backFields',
  'additionalInfoFields',
] as const;

export interface Template {
  name: string;
  /** Where it was read from: its folder in MODELS_DIR, or the admin API's upload (for messages). */
  dir: string;
  /** Stored through the admin API: its version (1, 2, …); a MODELS_DIR template has none. */
  version: number | null;
  /** The identity its passes belong to (an uploaded brand's template); null: any, the primary one by default. */
  passTypeIdentifier: string | null;
  style: PassStyle;
  /** Every field key of the style, in the order they appear. */
  fieldKeys: string[];
  /** The template's pass.json as parsed and converted (never mutated; bundle.ts clones it). */
  passJson: Record<string, unknown>;
  /** What reading the model rewrote in its pass.json (its override, hex colours, the deprecated barcode), one line each. */
  conversions: string[];
  /** Every other file of the model by bundle path (`icon.png`, `de.lproj/logo@2x.png`, `en.lproj/pass.strings`). */
  files: Readonly<Record<string, Buffer>>;
}

export interface TemplateProblem {
  path: string;
  message: string;
}

const TEMPLATE_SUFFIX = '.pass';
/** Beside a model folder `<name>.pass`: what to change in its pass.json (src/passes/model-conversion.ts). */
const OVERRIDE_SUFFIX = '.override.json';
/** Files a model must not carry: passkit-generator creates them when signing. */
const GENERATED_FILES = new Set(['manifest.json', 'signature', 'pass.json']);

/** What is wrong with a template's files; the message names the file and key. */
export class TemplateReadError extends Error {}

export async function loadTemplates(
  modelsDir: string,
): Promise<{ templates: Map<string, Template>; problems: TemplateProblem[] }> {
  const templates = new Map<string, Template>();
  const problems: TemplateProblem[] = [];
  let entries: Dirent[];
  try {
    entries = await readdir(modelsDir, { withFileTypes: true });
  } catch (error) {
    return {
      templates,
      problems: [{ path: modelsDir, message: `cannot read the models folder: ${describe(error)}` }],
    };
  }
  const folders = entries.filter((entry) => entry.isDirectory() && entry.name.endsWith(TEMPLATE_SUFFIX));
  const overrides = new Set(entries.filter((entry) => entry.isFile()).map((entry) => entry.name));
  for (const folder of folders.sort((a, b) => a.name.localeCompare(b.name))) {
    const dir = join(modelsDir, folder.name);
    const name = folder.name.slice(0, -TEMPLATE_SUFFIX.length);
    const overrideFile = `${name}${OVERRIDE_SUFFIX}`;
    try {
      const override = overrides.has(overrideFile) ? await readOverride(modelsDir, overrideFile) : {};
      const template = await loadTemplate(name, dir, override);
      templates.set(template.name, template);
    } catch (error) {
      if (!(error instanceof TemplateReadError)) throw error;
      problems.push({ path: dir, message: error.message });
    }
  }
  return { templates, problems };
}

async function loadTemplate(name: string, dir: string, override: Record<string, unknown>): Promise<Template> {
  const files = await readModelFiles(dir);
  return templateFromFiles({ name, dir, version: null, passTypeIdentifier: null, files, override });
}

/**
 * A template from a model's files (bundle paths: `pass.json`, `icon.png`, `de.lproj/pass.strings`) and its override,
 * as read from MODELS_DIR or uploaded through the admin API. Throws TemplateReadError naming the file at fault.
 */
export function templateFromFiles(model: {
  name: string;
  dir: string;
  version: number | null;
  passTypeIdentifier: string | null;
  files: ReadonlyMap<string, Buffer>;
  override: Record<string, unknown>;
}): Template {
  const { name, dir, version, passTypeIdentifier, files, override } = model;
  const overridden = applyOverride(parsePassJson(files.get('pass.json'), 'pass.json'), override);
  const converted = convertModel(overridden.passJson);
  const passJson = converted.passJson;
  const conversions = [...overridden.conversions, ...converted.conversions];
  // Apple: the icon is required; Wallet does not install a pass without icon.png.
  if (!files.has('icon.png')) throw new TemplateReadError('icon.png is missing (Wallet requires an icon)');
  const style = findStyle(passJson);
  const fieldKeys = collectFieldKeys(passJson, style);
  const conflict = imageConflict(style, [...files.keys()]);
  if (conflict !== undefined) throw new TemplateReadError(conflict);
  const otherFiles: Record<string, Buffer> = {};
  for (const [path, content] of files) {
    if (!GENERATED_FILES.has(path)) otherFiles[path] = content;
  }
  return {
    name,
    dir,
    version,
    passTypeIdentifier,
    style,
    fieldKeys,
    passJson,
    conversions,
    files: Object.freeze(otherFiles),
  };
}

/** Root files and files one level down in `<lang>.lproj/` folders, the only places Wallet looks. Hidden files are skipped. */
async function readModelFiles(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    if (entry.isFile()) {
      files.set(entry.name, await readFile(join(dir, entry.name)));
    } else if (entry.isDirectory() && entry.name.endsWith('.lproj')) {
      for (const inner of await readdir(join(dir, entry.name), { withFileTypes: true })) {
        if (inner.isFile() && !inner.name.startsWith('.')) {
          files.set(`${entry.name}/${inner.name}`, await readFile(join(dir, entry.name, inner.name)));
        }
      }
    }
  }
  return files;
}

/** An override file's JSON object (src/passes/model-conversion.ts); TemplateReadError names it when it is not one. */
export function parseOverride(content: Buffer, file: string): Record<string, unknown> {
  return parsePassJson(content, file);
}

async function readOverride(modelsDir: string, name: string): Promise<Record<string, unknown>> {
  try {
    return parseOverride(await readFile(join(modelsDir, name)), name);
  } catch (error) {
    if (error instanceof TemplateReadError) throw error;
    throw new TemplateReadError(`${name} cannot be read: ${describe(error)}`);
  }
}

function parsePassJson(content: Buffer | undefined, file: string): Record<string, unknown> {
  if (content === undefined) throw new TemplateReadError(`${file} is missing`);
  let value: unknown;
  try {
    value = JSON.parse(content.toString('utf8'));
  } catch (error) {
    throw new TemplateReadError(`${file} is not valid JSON: ${describe(error)}`);
  }
  if (!isRecord(value)) throw new TemplateReadError(`${file} is not a JSON object`);
  return value;
}

/**
 * Apple, for event tickets: "If you specify a strip image, do not specify a background image or a thumbnail." What
 * is wrong with this set of bundle files (`strip@2x.png`, `de.lproj/thumbnail.png`), or undefined.
 */
export function imageConflict(style: PassStyle, paths: readonly string[]): string | undefined {
  if (style !== 'eventTicket') return undefined;
  const kinds = new Set(
    paths.map(
      (path) => /^(strip|background|thumbnail)(?:@[23]x)?\.png$/.exec(path.split('/').at(-1) ?? '')?.[1],
    ),
  );
  const besideStrip = ['background', 'thumbnail'].filter((kind) => kinds.has(kind));
  if (!kinds.has('strip') || besideStrip.length === 0) return undefined;
  return (
    `an event ticket with a strip image must not have a ${besideStrip.join(' or ')} image (Apple: a strip, or a ` +
    'background and a thumbnail); remove one of them'
  );
}

/** Apple: a pass has exactly one style key, whose dictionary holds the fields. */
function findStyle(passJson: Record<string, unknown>): PassStyle {
  const styles = PASS_STYLES.filter((style) => style in passJson);
  if (styles.length !== 1) {
    const found = styles.length === 0 ? 'none' : styles.join(' and ');
    throw new TemplateReadError(
      `pass.json must have exactly one style key of ${PASS_STYLES.join(', ')}; found ${found}`,
    );
  }
  const style = styles[0] as PassStyle;
  if (!isRecord(passJson[style])) throw new TemplateReadError(`pass.json ${style} must be an object`);
  return style;
}

/** Apple: field keys must be unique within the pass, as changes and localization address fields by key. */
function collectFieldKeys(passJson: Record<string, unknown>, style: PassStyle): string[] {
  const keys: string[] = [];
  for (const { arrayName, index, field } of styleFields(passJson, style)) {
    const where = `${style}.${arrayName}[${index}]`;
    if (!isRecord(field) || typeof field.key !== 'string' || field.key === '') {
      throw new TemplateReadError(`pass.json ${where} must be an object with a non-empty string key`);
    }
    if (keys.includes(field.key))
      throw new TemplateReadError(`pass.json field key "${field.key}" is used twice`);
    keys.push(field.key);
  }
  return keys;
}

/** Every field of the style dictionary with where it sits; throws if a field array is not an array. */
export function styleFields(
  passJson: Record<string, unknown>,
  style: PassStyle,
): { arrayName: (typeof FIELD_ARRAYS)[number]; index: number; field: unknown }[] {
  const dictionary = passJson[style];
  if (!isRecord(dictionary)) return [];
  const result: { arrayName: (typeof FIELD_ARRAYS)[number]; index: number; field: unknown }[] = [];
  for (const arrayName of FIELD_ARRAYS) {
    const fields = dictionary[arrayName];
    if (fields === undefined) continue;
    if (!Array.isArray(fields))
      throw new TemplateReadError(`pass.json ${style}.${arrayName} must be an array`);
    fields.forEach((field: unknown, index) => {
      result.push({ arrayName, index, field });
    });
  }
  return result;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
