/*
 * Every template passes are made from: the MODELS_DIR folders read at start, and the versions uploaded through the
 * admin API (stored in the database, src/db/templates.ts). A stored version never changes, so each instance reads
 * it once and keeps it; which version is the latest is read from the database whenever a pass is created, so a
 * version published on another instance is used at once. A pass keeps the version it was built from.
 */
import type { TemplateReader, TemplatesRepository, TemplateVersionRecord } from '../db/templates.js';
import { ConflictError, InvalidError, NotFoundError } from '../errors.js';
import { type PassIdentifiers, templateProblem } from '../signing/bundle.js';
import { readTemplateArchive, type TemplateArchive, writeTemplateArchive } from './template-archive.js';
import { parseOverride, type Template, TemplateReadError, templateFromFiles } from './templates.js';

export interface CatalogEntry {
  /** A MODELS_DIR template, or the latest version of a stored one. */
  template: Template;
  /** A stored template's versions, ascending; empty for a MODELS_DIR one. */
  versions: number[];
}

export interface TemplateCatalog {
  /**
   * A stored template at `version`; without one (null or absent), a MODELS_DIR template or a stored one's latest
   * version. A pass made from a stored version keeps it even if a MODELS_DIR folder of its name appears later.
   */
  find(name: string, version?: number | null, reader?: TemplateReader): Promise<Template | undefined>;
  /** One template with its versions. */
  entry(name: string): Promise<CatalogEntry | undefined>;
  list(): Promise<CatalogEntry[]>;
  /**
   * Stores the next version of a template from a zip of its .pass folder, checked as Wallet would check its passes;
   * `owner`: the identity its passes belong to (any when absent).
   */
  publish(name: string, zip: Buffer, owner?: PassIdentifiers): Promise<Template>;
  /** Removes a stored version (every version when none is given) that no pass is built from. */
  remove(name: string, version?: number): Promise<void>;
}

export interface TemplateCatalogOptions {
  /** The MODELS_DIR templates, by name. */
  files: ReadonlyMap<string, Template>;
  repository: TemplatesRepository;
  /** Whose identifiers an uploaded template is checked with (the checks are the same for every identity). */
  identifiers: () => PassIdentifiers;
  clock: { now(): Date };
}

/** Names of uploaded templates: what a folder name and a URL segment can both carry. */
export const TEMPLATE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function createTemplateCatalog(o: TemplateCatalogOptions): TemplateCatalog {
  /** Stored versions already read, by name and version: immutable, so never read twice. */
  const versions = new Map<string, Promise<Template | undefined>>();

  /** A change's transaction passes its own reader (see TransactionRepositories.templates). */
  const load = (
    name: string,
    version: number,
    reader: TemplateReader = o.repository,
  ): Promise<Template | undefined> => {
    const key = `${name}\u0000${version}`;
    let loading = versions.get(key);
    if (!loading) {
      loading = reader.find(name, version).then((record) => record && fromArchive(record));
      // Neither a failed read nor a version not there (yet: another instance may publish it next) is kept.
      const forget = () => versions.delete(key);
      loading.then((template) => template ?? forget(), forget);
      versions.set(key, loading);
    }
    return loading;
  };

  return {
    async find(name, version, reader) {
      if (version !== undefined && version !== null) return load(name, version, reader);
      const file = o.files.get(name);
      if (file) return file;
      const latest = await o.repository.latestVersion(name);
      return latest === undefined ? undefined : load(name, latest);
    },
    async entry(name) {
      const file = o.files.get(name);
      if (file) return { template: file, versions: [] };
      const numbers = await o.repository.versionsOf(name);
      const latest = numbers.at(-1);
      const template = latest === undefined ? undefined : await load(name, latest);
      return template && { template, versions: numbers };
    },
    async list() {
      const stored = await o.repository.versions();
      const entries: CatalogEntry[] = [...o.files.values()].map((template) => ({ template, versions: [] }));
      for (const [name, numbers] of stored) {
        const latest = numbers.at(-1);
        const template = latest === undefined ? undefined : await load(name, latest);
        if (template) entries.push({ template, versions: numbers });
      }
      return entries.sort((a, b) => a.template.name.localeCompare(b.template.name));
    },
    async publish(name, zip, owner) {
      if (!TEMPLATE_NAME.test(name)) {
        throw new InvalidError(
          `Template name "${name}": letters, digits, ".", "_" and "-" only, starting with a letter or digit, up to 100`,
        );
      }
      if (o.files.has(name)) {
        throw new ConflictError(`"${name}" is a template of MODELS_DIR: upload it under another name`);
      }
      const archive = readTemplateArchive(zip);
      // Checked before it is stored: a version Wallet would refuse is never published.
      const passTypeIdentifier = owner?.passTypeIdentifier ?? null;
      const candidate = fromArchiveFiles({ name, version: 0, passTypeIdentifier }, archive);
      const problem = templateProblem(candidate, owner ?? o.identifiers());
      if (problem !== undefined) throw new InvalidError(`Template "${name}": ${problem}`);
      const stored = writeTemplateArchive(archive);
      const version = await o.repository.publish(name, stored, passTypeIdentifier, o.clock.now());
      const template = { ...candidate, version, dir: uploadedDir(name, version) };
      versions.set(`${name}\u0000${version}`, Promise.resolve(template));
      return template;
    },
    async remove(name, version) {
      if (o.files.has(name)) {
        throw new ConflictError(`"${name}" is a template of MODELS_DIR: remove its folder and restart`);
      }
      const outcome = await o.repository.remove(name, version);
      const which = version === undefined ? `template "${name}"` : `template "${name}" version ${version}`;
      if (outcome === 'absent') throw new NotFoundError(`No ${which}`);
      if (outcome === 'in-use') {
        throw new ConflictError(
          `Passes are built from ${which}: delete them, or move them to another version`,
        );
      }
      for (const key of versions.keys()) {
        if (key === `${name}\u0000${version}` || (version === undefined && key.startsWith(`${name}\u0000`))) {
          versions.delete(key);
        }
      }
    },
  };
}

const uploadedDir = (name: string, version: number) => `admin API: template "${name}" version ${version}`;

function fromArchive(record: TemplateVersionRecord): Template {
  return fromArchiveFiles(record, readTemplateArchive(record.archive));
}

/** The template of an uploaded archive; what is wrong with it is an InvalidError naming the file. */
function fromArchiveFiles(
  stored: Pick<TemplateVersionRecord, 'name' | 'version' | 'passTypeIdentifier'>,
  { files, override }: TemplateArchive,
): Template {
  const { name, version, passTypeIdentifier } = stored;
  try {
    return templateFromFiles({
      name,
      dir: uploadedDir(name, version),
      version,
      passTypeIdentifier,
      files,
      override: override === undefined ? {} : parseOverride(override, 'override.json'),
    });
  } catch (error) {
    if (error instanceof TemplateReadError) throw new InvalidError(`Template "${name}": ${error.message}`);
    throw error;
  }
}
