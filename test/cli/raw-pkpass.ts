import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync, type ZipAttributes, zipSync } from 'fflate';
import type { TestPki } from '../support/pki.js';
import { runOwned as run } from '../support/process.js';

/*
 * Builds .pkpass files by hand, independently of the server's signing code: fflate zips, node:crypto hashes,
 * the openssl CLI signs. Every step can be bent, so each broken pass breaks exactly one rule.
 */

export type Files = Map<string, Buffer>;

export interface RawOptions {
  /** Edits the manifest after it was computed (before signing). */
  manifest?: (manifest: Record<string, string>) => void;
  /** Signs these bytes instead of manifest.json (a signature that does not match). */
  signedContent?: Buffer;
  /** openssl cms -noattr: no signed attributes, so no signing time. */
  noSigningTime?: boolean;
  /** Leaves the WWDR intermediate out of the signature. */
  noWwdr?: boolean;
  /** Changes the files after signing (tampering, extra files). */
  after?: (files: Files) => void;
  /** Zip entries with attributes (links), added last. */
  entries?: Record<string, [Uint8Array, ZipAttributes]>;
}

export function unzip(bundle: Buffer): Files {
  return new Map(
    Object.entries(unzipSync(new Uint8Array(bundle))).map(([name, data]) => [name, Buffer.from(data)]),
  );
}

export function passJsonOf(files: Files): Record<string, unknown> {
  return JSON.parse((files.get('pass.json') ?? Buffer.from('{}')).toString('utf8')) as Record<
    string,
    unknown
  >;
}

export function withPassJson(files: Files, edit: (passJson: Record<string, unknown>) => void): Files {
  const copy = new Map(files);
  const passJson = passJsonOf(files);
  edit(passJson);
  copy.set('pass.json', Buffer.from(JSON.stringify(passJson)));
  return copy;
}

/** The content files only (pass.json, images, lproj): what a signing tool starts from. */
export function contentFiles(files: Files): Files {
  return new Map([...files].filter(([name]) => name !== 'manifest.json' && name !== 'signature'));
}

export async function rawPkpass(content: Files, pki: TestPki, o: RawOptions = {}): Promise<Buffer> {
  const manifest: Record<string, string> = {};
  for (const [name, data] of content) manifest[name] = createHash('sha1').update(data).digest('hex');
  o.manifest?.(manifest);
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const signature = await opensslSign(o.signedContent ?? manifestBytes, pki, o);
  const files: Files = new Map([...content, ['manifest.json', manifestBytes], ['signature', signature]]);
  o.after?.(files);
  const zipInput: Record<string, Uint8Array | [Uint8Array, ZipAttributes]> = {};
  for (const [name, data] of files) zipInput[name] = new Uint8Array(data);
  Object.assign(zipInput, o.entries ?? {});
  return Buffer.from(zipSync(zipInput));
}

async function opensslSign(content: Buffer, pki: TestPki, o: RawOptions): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'raw-pkpass-'));
  try {
    await writeFile(join(dir, 'manifest.json'), content);
    await writeFile(join(dir, 'cert.pem'), pki.signerCertPem);
    await writeFile(join(dir, 'key.pem'), pki.signerKeyPem);
    await writeFile(join(dir, 'wwdr.pem'), pki.wwdrPem);
    const args = ['cms', '-sign', '-binary', '-outform', 'DER', '-md', 'sha256'];
    args.push('-signer', 'cert.pem', '-inkey', 'key.pem', '-in', 'manifest.json', '-out', 'signature');
    if (!o.noWwdr) args.push('-certfile', 'wwdr.pem');
    if (o.noSigningTime) args.push('-noattr');
    await run('openssl', args, { cwd: dir });
    return await readFile(join(dir, 'signature'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A model folder (root files and <lang>.lproj/ files) as bundle paths. */
export async function readModel(dir: string): Promise<Files> {
  const files: Files = new Map();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    if (entry.isFile()) files.set(entry.name, await readFile(join(dir, entry.name)));
    if (entry.isDirectory()) {
      for (const inner of await readdir(join(dir, entry.name))) {
        if (!inner.startsWith('.'))
          files.set(`${entry.name}/${inner}`, await readFile(join(dir, entry.name, inner)));
      }
    }
  }
  return files;
}

/** One entry of rawZip: its name, the bytes stored, and the sizes its headers declare (which may lie). */
export interface RawZipEntry {
  name: string;
  /** The bytes in the archive: deflated ones when method is 8. */
  stored: Buffer;
  method: 0 | 8;
  /** The uncompressed size the headers declare. */
  originalSize: number;
  /** Points this entry's central directory record at an earlier entry's local header and data (no own data). */
  sharesWith?: number;
}

/**
 * A zip archive written byte by byte (APPNOTE.TXT 4.3), so that it can be wrong where zip writers never are:
 * entries that share one local header, sizes that lie. CRCs are left 0 (validate does not read them).
 */
export function rawZip(entries: RawZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (const entry of entries) {
    if (entry.sharesWith !== undefined) {
      offsets.push(offsets[entry.sharesWith] as number);
      continue;
    }
    const name = Buffer.from(entry.name, 'utf8');
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0);
    header.writeUInt16LE(20, 4);
    header.writeUInt16LE(0x800, 6);
    header.writeUInt16LE(entry.method, 8);
    header.writeUInt32LE(entry.stored.length, 18);
    header.writeUInt32LE(entry.originalSize, 22);
    header.writeUInt16LE(name.length, 26);
    offsets.push(offset);
    locals.push(header, name, entry.stored);
    offset += header.length + name.length + entry.stored.length;
  }
  const central: Buffer[] = [];
  entries.forEach((entry, i) => {
    const source = entries[entry.sharesWith ?? i] as RawZipEntry;
    const name = Buffer.from(entry.name, 'utf8');
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE(20, 4);
    header.writeUInt16LE(20, 6);
    header.writeUInt16LE(0x800, 8);
    header.writeUInt16LE(source.method, 10);
    header.writeUInt32LE(source.stored.length, 20);
    header.writeUInt32LE(entry.sharesWith === undefined ? entry.originalSize : source.originalSize, 24);
    header.writeUInt16LE(name.length, 28);
    header.writeUInt32LE(offsets[i] as number, 42);
    central.push(header, name);
  });
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
