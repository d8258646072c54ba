import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { InvalidError } from '../errors.js';
import { isRecord } from '../json.js';
import { readPngSize } from '../passes/pass-images.js';
import { checkPassJson } from '../passes/pass-json-rules.js';
import { isAppleWwdr, oneLine } from '../signing/identity.js';
import { decodeStrings, parseStrings } from '../signing/pass-strings.js';
import { checkSignerCertificate, checkValidity, issuedBy, wwdrGeneration } from './certificate-rules.js';
import {
  CmsError,
  findSignerCertificate,
  parseSignedData,
  type SignedData,
  signingTime,
  verifySigner,
} from './cms.js';
import { exitCode, type Finding, fail, pass, renderFindings } from './findings.js';

/*
 * `validate <file.pkpass>`: would Wallet accept this file? Any .pkpass, ours or anyone's. The rules are Apple's
 * ("Building a pass", the pass.json reference, "Pass design and creation"); each finding names its rule.
 */

export interface ValidateOptions {
  /**
   * Trust this CA instead of Apple's WWDR intermediate (a test or development PKI). Without it the signer must
   * be issued by Apple's WWDR, itself issued by Apple Root CA (checked by name: the root is not bundled).
   */
  wwdrPem?: string;
  now?: Date;
}

export const BUNDLE_RULES = {
  archive: 'zip/archive',
  layout: 'zip/layout',
  junk: 'zip/junk',
  requiredFiles: 'bundle/required-files',
  passJson: 'pass.json/json',
  manifestJson: 'manifest/json',
  manifestComplete: 'manifest/complete',
  manifestSha1: 'manifest/sha1',
  cms: 'signature/cms',
  verifies: 'signature/verifies',
  certificates: 'signature/certificates',
  signingTime: 'signature/signing-time',
  chain: 'signer/chain',
  icon: 'images/icon',
  png: 'images/png',
  strings: 'strings/syntax',
} as const;
const R = BUNDLE_RULES;

const LPROJ = /^[A-Za-z0-9_-]+\.lproj$/;
const JUNK = /(^|\/)(__MACOSX\/|\.DS_Store$|Thumbs\.db$|desktop\.ini$|\._)/;
const UNLISTED = new Set(['manifest.json', 'signature']);
const BUILDING = 'Apple, "Building a pass"';
const REBUILD =
  'Rebuild the pass with your signing tool (it writes manifest.json and signature from the files).';

type Files = Map<string, Buffer>;

export function validatePkpass(bundle: Buffer, options: ValidateOptions = {}): Finding[] {
  let entries: ArchiveEntry[];
  try {
    entries = readArchive(bundle);
  } catch (error) {
    return [
      fail(
        R.archive,
        `not a readable zip archive (${(error as Error).message})`,
        "A .pkpass is a zip archive: zip the pass folder's files (not the folder).",
        `${BUILDING}: Wallet opens the pass as a zip.`,
      ),
    ];
  }
  const { findings, files } = checkLayout(entries);
  findings.push(...checkRequiredFiles(files));
  const manifest = parseJsonFile(files, 'manifest.json', R.manifestJson, findings);
  if (manifest !== undefined) findings.push(...checkManifest(manifest, files));
  const passJson = parseJsonFile(files, 'pass.json', R.passJson, findings);
  const signature = files.get('signature');
  const manifestBytes = files.get('manifest.json');
  if (signature !== undefined && manifestBytes !== undefined) {
    findings.push(...checkSignature(signature, manifestBytes, passJson ?? {}, options));
  }
  if (passJson !== undefined) findings.push(...checkPassJson(passJson));
  findings.push(...checkImages(files));
  findings.push(...checkStrings(files));
  return findings;
}

// ---------- zip layout ----------

interface ArchiveEntry {
  name: string;
  isDirectory: boolean;
  isSymlink: boolean;
  /** Undefined for directories, links and entries that cannot be read (see `error`). */
  data: Buffer | undefined;
  error?: string;
}

/*
 * Limits that keep a zip bomb from taking the machine: far above any real pass (Apple asks for small passes; ours are
 * ≈ 140 kB), and checked on the central directory's sizes before anything is inflated. Declared sizes can lie, so
 * each entry is also inflated with its declared size as the hard limit (zlib stops there): it never takes more.
 */
const MAX_ENTRY_BYTES = 16 * 1024 * 1024;
const MAX_TOTAL_BYTES = 64 * 1024 * 1024;

/** The archive as a whole cannot be read (or is refused): reported as zip/archive. */
class ArchiveError extends Error {}

/** An entry of the central directory, with where its data is. */
interface DirectoryEntry {
  name: string;
  compression: number;
  compressedSize: number;
  originalSize: number;
  /** Where its local header starts, and where its (compressed) data starts and ends. */
  headerAt: number;
  dataAt: number;
  dataEnd: number;
  isSymlink: boolean;
}

/**
 * Every entry of the central directory, so that what a plain unzip hides is seen: directory entries, symbolic
 * links, duplicate names, entries that cannot be read, entries that share data. Throws when the archive itself
 * cannot be read, or declares more than MAX_TOTAL_BYTES to inflate.
 */
function readArchive(bundle: Buffer): ArchiveEntry[] {
  const directory = readCentralDirectory(bundle);
  refuseSharedData(directory);
  // Directories and links hold no file content: they are listed, never inflated.
  const holdsFile = (entry: DirectoryEntry) => !entry.name.endsWith('/') && !entry.isSymlink;
  const problems = directory.map((entry) => (holdsFile(entry) ? unreadable(entry) : undefined));
  const inflated = directory.reduce(
    (total, entry, i) => (holdsFile(entry) && problems[i] === undefined ? total + entry.originalSize : total),
    0,
  );
  if (inflated > MAX_TOTAL_BYTES) {
    throw new ArchiveError(
      `its entries declare ${inflated} bytes uncompressed in total, more than the ${MAX_TOTAL_BYTES} validate reads`,
    );
  }
  return directory.map((entry, i) => {
    const base = { name: entry.name, isDirectory: entry.name.endsWith('/'), isSymlink: entry.isSymlink };
    if (!holdsFile(entry)) return { ...base, data: undefined };
    const problem = problems[i];
    if (problem !== undefined) return { ...base, data: undefined, error: problem };
    const read = entryData(bundle, entry);
    return typeof read === 'string' ? { ...base, data: undefined, error: read } : { ...base, data: read };
  });
}

function unreadable(entry: DirectoryEntry): string | undefined {
  if (entry.compression !== 0 && entry.compression !== 8) {
    return `compression method ${entry.compression} (Wallet reads stored and deflated entries only)`;
  }
  if (entry.originalSize > MAX_ENTRY_BYTES)
    return `${entry.originalSize} bytes uncompressed, more than the ${MAX_ENTRY_BYTES} validate reads`;
  return undefined;
}

/** The entry's content, never more than it declares; a string says why it cannot be read. */
function entryData(bundle: Buffer, entry: DirectoryEntry): Buffer | string {
  const stored = bundle.subarray(entry.dataAt, entry.dataEnd);
  let data: Buffer;
  if (entry.compression === 0) data = stored;
  else {
    try {
      // maxOutputLength: zlib stops inflating once the output passes it (it must be at least 1).
      data = inflateRawSync(stored, { maxOutputLength: Math.max(1, entry.originalSize) });
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE')
        return `inflates to more than the ${entry.originalSize} bytes it declares`;
      return `its deflated data is damaged (${(error as Error).message})`;
    }
  }
  if (data.length !== entry.originalSize)
    return `holds ${data.length} bytes, not the ${entry.originalSize} it declares`;
  return data;
}

/**
 * Entries whose local headers and data overlap share bytes: 40 entries pointing at one 64 MB deflated entry are a
 * 67 kB file that inflates to 2.5 GB. No archiver writes that; the archive is refused.
 */
function refuseSharedData(directory: DirectoryEntry[]): void {
  const byPlace = [...directory].sort((a, b) => a.headerAt - b.headerAt);
  for (let i = 1; i < byPlace.length; i++) {
    const before = byPlace[i - 1] as DirectoryEntry;
    const entry = byPlace[i] as DirectoryEntry;
    if (entry.headerAt < before.dataEnd) {
      throw new ArchiveError(
        `entries "${before.name}" and "${entry.name}" share data: their local headers overlap`,
      );
    }
  }
}

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const ZIP64_END_LOCATOR = 0x07064b50;
const ZIP64_END = 0x06064b50;
const CENTRAL_HEADER = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const ZIP64_EXTRA = 0x0001;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/**
 * Reads the central directory (APPNOTE.TXT 4.3.12–4.3.16, with ZIP64 sizes and offsets). By hand: fflate's unzip
 * exposes neither the local header offsets (needed to see entries that share data) nor the external attributes
 * (symbolic links), and it inflates every entry it lists with no limit but the size the entry declares. Each entry is
 * inflated with node:zlib instead, whose maxOutputLength is a documented hard limit.
 */
function readCentralDirectory(bundle: Buffer): DirectoryEntry[] {
  const u16 = (at: number) => bundle.readUInt16LE(at);
  const u32 = (at: number) => bundle.readUInt32LE(at);
  const u64 = (at: number) => Number(bundle.readBigUInt64LE(at));
  // The record is last, followed by a comment of at most 65,535 bytes.
  const lowest = Math.max(0, bundle.length - 22 - 0xffff);
  let end = bundle.length - 22;
  while (end >= lowest && u32(end) !== END_OF_CENTRAL_DIRECTORY) end--;
  if (end < lowest) throw new ArchiveError('no end of central directory record');
  let count = u16(end + 10);
  let at = u32(end + 16);
  if ((count === 0xffff || at === 0xffffffff) && end >= 20 && u32(end - 20) === ZIP64_END_LOCATOR) {
    const zip64 = u64(end - 12);
    if (zip64 + 56 > bundle.length || u32(zip64) !== ZIP64_END)
      throw new ArchiveError('damaged ZIP64 end record');
    count = u64(zip64 + 32);
    at = u64(zip64 + 48);
  }
  const entries: DirectoryEntry[] = [];
  for (; count > 0; count--) {
    if (at + 46 > bundle.length || u32(at) !== CENTRAL_HEADER)
      throw new ArchiveError('the central directory is damaged or truncated');
    const nameLength = u16(at + 28);
    const extraLength = u16(at + 30);
    const nameAt = at + 46;
    const extraAt = nameAt + nameLength;
    if (extraAt + extraLength > bundle.length) throw new ArchiveError('the central directory is truncated');
    // Bit 11: the name is UTF-8; otherwise CP437, read as Latin-1 (fflate does the same).
    const name = bundle.toString(u16(at + 8) & 0x800 ? 'utf8' : 'latin1', nameAt, extraAt);
    const sizes = zip64Sizes(bundle, extraAt, extraLength, {
      originalSize: u32(at + 24),
      compressedSize: u32(at + 20),
      headerAt: u32(at + 42),
    });
    const madeByUnix = bundle.readUInt8(at + 5) === 3;
    const isSymlink = madeByUnix && ((u32(at + 38) >>> 16) & S_IFMT) === S_IFLNK;
    if (sizes.headerAt + 30 > bundle.length || u32(sizes.headerAt) !== LOCAL_HEADER)
      throw new ArchiveError(`"${name}" has no local header where the central directory says`);
    const dataAt = sizes.headerAt + 30 + u16(sizes.headerAt + 26) + u16(sizes.headerAt + 28);
    const dataEnd = dataAt + sizes.compressedSize;
    if (dataEnd > bundle.length) throw new ArchiveError(`"${name}" runs past the end of the file`);
    entries.push({ name, compression: u16(at + 10), ...sizes, dataAt, dataEnd, isSymlink });
    at = extraAt + extraLength + u16(at + 32);
  }
  return entries;
}

/** APPNOTE 4.5.3: a size or offset of 0xFFFFFFFF is in the ZIP64 extra field, in this order. */
function zip64Sizes(
  bundle: Buffer,
  extraAt: number,
  extraLength: number,
  sizes: { originalSize: number; compressedSize: number; headerAt: number },
): typeof sizes {
  const keys = (['originalSize', 'compressedSize', 'headerAt'] as const).filter(
    (key) => sizes[key] === 0xffffffff,
  );
  if (keys.length === 0) return sizes;
  for (let at = extraAt; at + 4 <= extraAt + extraLength; at += 4 + bundle.readUInt16LE(at + 2)) {
    if (bundle.readUInt16LE(at) !== ZIP64_EXTRA) continue;
    if (bundle.readUInt16LE(at + 2) < 8 * keys.length || at + 4 + 8 * keys.length > bundle.length)
      throw new ArchiveError('a ZIP64 extra field is too short');
    const found = { ...sizes };
    keys.forEach((key, i) => {
      found[key] = Number(bundle.readBigUInt64LE(at + 4 + 8 * i));
    });
    return found;
  }
  throw new ArchiveError('a ZIP64 size is missing its extra field');
}

function checkLayout(entries: ArchiveEntry[]): { findings: Finding[]; files: Files } {
  const files: Files = new Map();
  const layout: string[] = [];
  const junk: string[] = [];
  for (const entry of entries) {
    if (JUNK.test(entry.name)) junk.push(entry.name);
    else {
      const problem = layoutProblem(entry, files);
      if (problem !== undefined) layout.push(problem);
    }
    if (entry.data !== undefined && !isUnsafe(entry.name) && !files.has(entry.name))
      files.set(entry.name, entry.data);
  }
  const findings = [
    ...outcome(
      R.layout,
      layout,
      `${entries.length} entries, all at the root or in <lang>.lproj/`,
      'Zip the files of the pass folder themselves: no parent folder, no links, only <lang>.lproj/ subfolders.',
      `${BUILDING}: Wallet reads files at the root of the archive and in <lang>.lproj folders only.`,
    ),
    ...outcome(
      R.junk,
      junk.map((name) => `junk entry "${name}"`),
      'no junk files (__MACOSX, .DS_Store, ._*)',
      'Zip without metadata, e.g. `zip -r -X pass.pkpass . -x "*.DS_Store" "__MACOSX/*"`.',
      'Files that are not in manifest.json make Wallet refuse the pass; archivers add them silently.',
    ),
  ];
  return { findings, files };
}

function isUnsafe(name: string): boolean {
  return (
    name.startsWith('/') || name.includes('\\') || name.split('/').includes('..') || /^[A-Za-z]:/.test(name)
  );
}

function layoutProblem(entry: ArchiveEntry, files: Files): string | undefined {
  const { name } = entry;
  if (isUnsafe(name)) return `"${name}" is an absolute path or climbs out with ..`;
  if (entry.isSymlink) return `"${name}" is a symbolic link`;
  const parts = name.split('/');
  if (entry.isDirectory) {
    return parts.length === 2 && LPROJ.test(parts[0] as string)
      ? undefined
      : `directory "${name}" is not a <lang>.lproj folder`;
  }
  if (entry.error !== undefined) return `"${name}" cannot be read: ${entry.error}`;
  if (files.has(name)) return `"${name}" is in the archive twice`;
  if (parts.length === 1) return undefined;
  if (parts.length === 2 && LPROJ.test(parts[0] as string)) return undefined;
  return `"${name}" is neither at the root nor directly in a <lang>.lproj folder`;
}

function checkRequiredFiles(files: Files): Finding[] {
  const missing = ['pass.json', 'manifest.json', 'signature'].filter((name) => !files.has(name));
  return outcome(
    R.requiredFiles,
    missing.map((name) => `${name} is missing`),
    'pass.json, manifest.json and signature are present',
    REBUILD,
    `${BUILDING}: a pass is pass.json and its images, plus manifest.json and its signature.`,
  );
}

function parseJsonFile(
  files: Files,
  name: string,
  rule: string,
  findings: Finding[],
): Record<string, unknown> | undefined {
  const content = files.get(name);
  if (content === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(content.toString('utf8'));
    if (isRecord(value)) return value;
    findings.push(
      fail(
        rule,
        `${name} is not a JSON object`,
        `Make ${name} a JSON dictionary.`,
        `${BUILDING}: Wallet reads ${name} as a dictionary.`,
      ),
    );
  } catch (error) {
    findings.push(
      fail(
        rule,
        `${name} is not valid JSON: ${(error as Error).message}`,
        `Fix the JSON syntax of ${name} (UTF-8, no comments, no trailing commas).`,
        `${BUILDING}: Wallet refuses a pass whose ${name} does not parse.`,
      ),
    );
  }
  return undefined;
}

// ---------- manifest ----------

/** Apple: manifest.json maps every file except itself and signature to the hex SHA-1 of its content. */
function checkManifest(manifest: Record<string, unknown>, files: Files): Finding[] {
  const incomplete: string[] = [];
  const wrong: string[] = [];
  for (const [name, content] of files) {
    if (UNLISTED.has(name)) continue;
    const listed = manifest[name];
    if (listed === undefined) {
      incomplete.push(`"${name}" is in the archive but not in manifest.json`);
      continue;
    }
    const actual = createHash('sha1').update(content).digest('hex');
    if (typeof listed !== 'string' || listed.toLowerCase() !== actual) {
      wrong.push(`SHA-1 of "${name}" is ${actual} but manifest.json says ${JSON.stringify(listed)}`);
    }
  }
  for (const name of Object.keys(manifest)) {
    if (UNLISTED.has(name)) incomplete.push(`manifest.json lists "${name}", which it must not`);
    else if (!files.has(name)) incomplete.push(`manifest.json lists "${name}", which is not in the archive`);
  }
  const why = `${BUILDING}: manifest.json lists the SHA-1 of every file; Wallet refuses a pass with a file that is missing, extra or changed.`;
  return [
    ...outcome(
      R.manifestComplete,
      incomplete,
      'manifest.json lists exactly the files of the archive',
      REBUILD,
      why,
    ),
    ...outcome(
      R.manifestSha1,
      wrong,
      'every SHA-1 in manifest.json matches its file',
      `${REBUILD} Do not change a file after signing.`,
      why,
    ),
  ];
}

// ---------- signature ----------

function checkSignature(
  signature: Buffer,
  manifest: Buffer,
  passJson: Record<string, unknown>,
  options: ValidateOptions,
): Finding[] {
  const why = `${BUILDING}: signature is a detached PKCS#7 (CMS) signature of manifest.json made with the Pass Type ID certificate.`;
  let signed: SignedData;
  try {
    signed = parseSignedData(signature);
  } catch (error) {
    if (!(error instanceof CmsError)) throw error;
    return [fail(R.cms, `signature: ${error.message}`, REBUILD, why)];
  }
  const signer = signed.signers[0];
  if (signer === undefined || signed.signers.length > 1 || !signed.detached) {
    const detail = !signed.detached
      ? 'the signature embeds its content; it must be detached'
      : `${signed.signers.length} signers; exactly one is expected`;
    return [fail(R.cms, detail, REBUILD, why)];
  }
  const findings = [pass(R.cms, 'signature is a detached CMS SignedData with one signer')];
  const signerCert = findSignerCertificate(signer, signed.certificates);
  if (signerCert === undefined) {
    findings.push(
      fail(
        R.certificates,
        'the signer certificate is not embedded in the signature',
        REBUILD,
        'Wallet verifies the signature with the certificate the signature carries.',
      ),
    );
    return findings;
  }
  const verification = verifySigner(signer, signerCert, manifest);
  findings.push(
    verification.ok
      ? pass(R.verifies, 'the signature of manifest.json verifies')
      : fail(R.verifies, verification.reason, REBUILD, why),
  );
  const intermediate = signed.certificates.find((cert) => cert !== signerCert && issuedBy(signerCert, cert));
  findings.push(checkEmbeddedCertificates(signerCert, intermediate));
  findings.push(checkSigningTime(signingTimeOf(signer)));
  findings.push(...checkChain(signerCert, intermediate, options));
  findings.push(
    ...checkSignerCertificate(
      signerCert,
      {
        passTypeIdentifier: stringOrUndefined(passJson.passTypeIdentifier),
        teamIdentifier: stringOrUndefined(passJson.teamIdentifier),
        source: 'pass.json',
      },
      options.now ?? new Date(),
    ),
  );
  return findings;
}

function signingTimeOf(signer: SignedData['signers'][number]): Date | undefined {
  try {
    return signingTime(signer);
  } catch {
    return undefined;
  }
}

function checkEmbeddedCertificates(
  signerCert: X509Certificate,
  intermediate: X509Certificate | undefined,
): Finding {
  if (intermediate !== undefined) {
    return pass(
      R.certificates,
      `carries the signer (${subjectCn(signerCert)}) and its issuer (${subjectCn(intermediate)})`,
    );
  }
  return fail(
    R.certificates,
    `the certificate that issued the signer (${oneLine(signerCert.issuer)}) is not embedded`,
    'Sign with the WWDR intermediate included (passkit-generator: the `wwdr` option; openssl: -certfile wwdr.pem).',
    "Devices hold only Apple's root: without the WWDR intermediate in the signature the chain cannot be built and the pass is refused.",
  );
}

function checkSigningTime(time: Date | undefined): Finding {
  if (time !== undefined) return pass(R.signingTime, `signed at ${time.toISOString()}`);
  return fail(
    R.signingTime,
    'the signer info has no signingTime attribute',
    'Sign with signed attributes (openssl cms without -noattr; passkit-generator adds it).',
    'Wallet requires a signing time in the signature, and checks the certificate against it.',
  );
}

function checkChain(
  signerCert: X509Certificate,
  intermediate: X509Certificate | undefined,
  options: ValidateOptions,
): Finding[] {
  const why =
    'iOS installs only passes whose certificate chains to Apple Root CA through the WWDR intermediate.';
  if (options.wwdrPem !== undefined) {
    const trusted = new X509Certificate(options.wwdrPem);
    return issuedBy(signerCert, trusted)
      ? [pass(R.chain, `issued by the given CA (${subjectCn(trusted)})`)]
      : [
          fail(
            R.chain,
            `not issued by the given CA (${subjectCn(trusted)}); issuer is ${oneLine(signerCert.issuer)}`,
            'Sign with a certificate issued by that CA, or validate against the CA that issued it.',
            why,
          ),
        ];
  }
  if (intermediate === undefined || !isAppleWwdr(intermediate)) {
    return [
      fail(
        R.chain,
        `issued by ${oneLine(signerCert.issuer)}, not by Apple's WWDR intermediate`,
        "Sign with the Pass Type ID certificate from developer.apple.com and Apple's WWDR (G4). For a test or development CA, pass --wwdr <its PEM>.",
        why,
      ),
    ];
  }
  return [
    pass(
      R.chain,
      `issued by Apple WWDR ${wwdrGeneration(intermediate)}, under ${oneLine(intermediate.issuer)} (root checked by name)`,
    ),
    checkValidity(
      intermediate,
      `the WWDR intermediate (${wwdrGeneration(intermediate)})`,
      R.chain,
      options.now ?? new Date(),
    ),
  ];
}

// ---------- images ----------

function checkImages(files: Files): Finding[] {
  const hasIcon = [...files.keys()].some(
    (name) => name === 'icon.png' || /^[^/]+\.lproj\/icon\.png$/.test(name),
  );
  const pngs = [...files].filter(([name]) => name.toLowerCase().endsWith('.png'));
  const broken = pngs
    .map(([name, content]) => pngProblem(name, content))
    .filter((p): p is string => p !== undefined);
  return [
    hasIcon
      ? pass(R.icon, 'icon.png is present')
      : fail(
          R.icon,
          'icon.png is missing',
          'Add icon.png (29×29 pt: 29, 58 and 87 px as icon.png, icon@2x.png, icon@3x.png).',
          'Apple: the icon is required; it is shown on the lock screen and in notifications, and Wallet refuses a pass without it.',
        ),
    ...outcome(
      R.png,
      broken,
      `${pngs.length} PNG images are valid`,
      'Export the images as real PNG files (not JPEG renamed to .png).',
      'Apple: pass images are PNG; Wallet refuses a pass with an image it cannot decode.',
    ),
  ];
}

function pngProblem(name: string, content: Buffer): string | undefined {
  const size = readPngSize(content);
  return 'problem' in size ? `${name} ${size.problem}` : undefined;
}

// ---------- localisations ----------

/** Every `<lang>.lproj/pass.strings` must read as a strings file: Wallet drops a file it cannot parse, whole. */
function checkStrings(files: Files): Finding[] {
  const strings = [...files].filter(([name]) => /^[^/]+\.lproj\/pass\.strings$/.test(name));
  const broken: string[] = [];
  for (const [name, content] of strings) {
    try {
      parseStrings(decodeStrings(content), name);
    } catch (error) {
      if (!(error instanceof InvalidError)) throw error;
      broken.push(error.message);
    }
  }
  return outcome(
    R.strings,
    broken,
    strings.length === 0 ? 'no pass.strings' : `${strings.length} pass.strings files read`,
    'Write each entry as "key" = "value"; with quotes and backslashes escaped (\\" and \\\\), UTF-8 or UTF-16 with a BOM.',
    'Apple ("Creating the Source for a Pass"): each <lang>.lproj/pass.strings holds the translations as "key" = "value"; pairs; a file that does not parse cannot translate the pass.',
  );
}

// ---------- helpers ----------

function outcome(rule: string, problems: string[], okDetail: string, fix: string, why: string): Finding[] {
  if (problems.length === 0) return [pass(rule, okDetail)];
  return problems.map((problem) => fail(rule, problem, fix, why));
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function subjectCn(cert: X509Certificate): string {
  return /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? oneLine(cert.subject);
}

// ---------- command ----------

const USAGE = 'usage: passkit-server validate <file.pkpass> [--wwdr <ca.pem>] [--json]';

/** `validate <file.pkpass> [--wwdr <ca.pem>] [--json]`: prints the findings; 0 when none failed. */
export async function runValidate(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const wwdrAt = args.indexOf('--wwdr');
  const wwdrPath = wwdrAt >= 0 ? args[wwdrAt + 1] : undefined;
  const files = args.filter((arg, i) => !arg.startsWith('--') && !(wwdrAt >= 0 && i === wwdrAt + 1));
  if (files.length !== 1 || (wwdrAt >= 0 && wwdrPath === undefined)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const file = files[0] as string;
  let findings: Finding[];
  try {
    const options: ValidateOptions =
      wwdrPath === undefined ? {} : { wwdrPem: await readFile(wwdrPath, 'utf8') };
    findings = validatePkpass(await readFile(file), options);
  } catch (error) {
    findings = [fail('input', `cannot read: ${(error as Error).message}`, 'Check the path.')];
  }
  process.stdout.write(renderFindings(`validate ${file}`, findings, { json }));
  return exitCode(findings);
}
