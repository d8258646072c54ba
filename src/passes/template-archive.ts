import { unzipSync, zipSync } from 'fflate';
import { InvalidError } from '../errors.js';

/*
 * A template uploaded through the admin API: a zip of a `.pass` folder as it would sit in MODELS_DIR. The zip holds
 * the model's files at its root, or one folder (`loyalty.pass/`) holding them; an `override.json` (or
 * `<name>.override.json`) beside them supplies what the model lacks (src/passes/model-conversion.ts). Only the
 * places Wallet reads are taken: root files and files of `<lang>.lproj/` folders. The sizes are checked before
 * anything is inflated, so a small zip cannot make the server inflate gigabytes.
 */

export interface TemplateArchive {
  /** Bundle path → bytes (`pass.json`, `icon@2x.png`, `de.lproj/pass.strings`). */
  files: Map<string, Buffer>;
  /** The override file's bytes, when the zip has one. */
  override: Buffer | undefined;
}

/** A pass's files are a few hundred kilobytes; Apple's own limits on images keep a model far below these. */
export const ARCHIVE_LIMITS = {
  files: 200,
  fileBytes: 5 * 1024 * 1024,
  totalBytes: 20 * 1024 * 1024,
} as const;

const LPROJ = /^[A-Za-z0-9_-]+\.lproj$/;
const OVERRIDE = /^(?:[^/]+\.)?override\.json$/;

export function readTemplateArchive(zip: Buffer): TemplateArchive {
  const entries = inflate(zip);
  const names = Object.keys(entries).filter((name) => !ignored(name));
  const outside = names.find((name) => !insideFolder(name));
  if (outside !== undefined) {
    throw new InvalidError(`${outside}: a path out of the template's folder (absolute, or with "..")`);
  }
  const prefix = commonFolder(names);
  const files = new Map<string, Buffer>();
  let override: Buffer | undefined;
  for (const name of names) {
    const content = Buffer.from(entries[name] ?? new Uint8Array());
    if (prefix !== '' && !name.startsWith(prefix)) {
      // Beside the .pass folder, only its override may sit.
      if (OVERRIDE.test(name)) override = content;
      else throw new InvalidError(`${name}: only the .pass folder and its override.json may be in the zip`);
      continue;
    }
    const path = name.slice(prefix.length);
    if (prefix === '' && OVERRIDE.test(path)) {
      override = content;
      continue;
    }
    checkPath(name, path);
    files.set(path, content);
  }
  return { files, override };
}

/** The model as a zip again, to store as uploaded (its files and override, nothing else). */
export function writeTemplateArchive(archive: TemplateArchive): Buffer {
  const entries: Record<string, Uint8Array> = {};
  for (const [path, content] of archive.files) entries[path] = content;
  if (archive.override) entries['override.json'] = archive.override;
  return Buffer.from(zipSync(entries, { level: 6 }));
}

function inflate(zip: Buffer): Record<string, Uint8Array> {
  let count = 0;
  let total = 0;
  let refused: string | undefined;
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(new Uint8Array(zip), {
      // Called before each entry is inflated, with its declared size.
      filter(file) {
        if (file.name.endsWith('/') || ignored(file.name)) return false;
        count += 1;
        total += file.originalSize;
        if (count > ARCHIVE_LIMITS.files) refused ??= `more than ${ARCHIVE_LIMITS.files} files`;
        else if (file.originalSize > ARCHIVE_LIMITS.fileBytes)
          refused ??= `${file.name} is over ${ARCHIVE_LIMITS.fileBytes / 1024 / 1024} MB`;
        else if (total > ARCHIVE_LIMITS.totalBytes)
          refused ??= `its files are over ${ARCHIVE_LIMITS.totalBytes / 1024 / 1024} MB together`;
        return refused === undefined;
      },
    });
  } catch (error) {
    throw new InvalidError(
      `The body is not a zip archive (${(error as Error).message}): zip the .pass folder`,
    );
  }
  if (refused !== undefined) throw new InvalidError(`The zip is too large: ${refused}`);
  // An entry's declared size is what the filter checked; one that inflates to more is refused too.
  for (const [name, content] of Object.entries(entries)) {
    if (content.byteLength > ARCHIVE_LIMITS.fileBytes)
      throw new InvalidError(`The zip is too large: ${name}`);
  }
  return entries;
}

/** What Finder and editors add beside a model: never part of a pass. */
function ignored(name: string): boolean {
  // `..` is no hidden file: checkPath refuses it, naming it.
  return (
    name.startsWith('__MACOSX/') || name.split('/').some((part) => part.startsWith('.') && part !== '..')
  );
}

/** `loyalty.pass/` when every entry is inside that one folder (and it is not a language folder), else ''. */
function commonFolder(names: readonly string[]): string {
  const folders = new Set(names.filter((name) => name.includes('/')).map((name) => name.split('/')[0]));
  const [only] = folders;
  if (folders.size !== 1 || only === undefined || LPROJ.test(only)) return '';
  const inside = names.filter((name) => name.startsWith(`${only}/`));
  const beside = names.filter((name) => !name.startsWith(`${only}/`));
  return inside.length > 0 && beside.every((name) => OVERRIDE.test(name)) ? `${only}/` : '';
}

/** No way out of the folder it is unpacked in ("zip slip"): no absolute path, no `..`, no backslashes. */
function insideFolder(name: string): boolean {
  return (
    !name.includes('\\') && name.split('/').every((part) => part !== '' && part !== '.' && part !== '..')
  );
}

/** Root files and `<lang>.lproj/` files only. */
function checkPath(name: string, path: string): void {
  const parts = path.split('/');
  if (parts.length === 1 || (parts.length === 2 && LPROJ.test(parts[0] ?? ''))) return;
  throw new InvalidError(
    `${name}: a template holds files at its root and in <lang>.lproj/ folders only (Wallet reads nothing else)`,
  );
}
