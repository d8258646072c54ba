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
