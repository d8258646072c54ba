import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { runOwned as run } from './process.js';

/*
 * Checks a .pkpass the way Wallet does, independently of the server's code: fflate unzips, node:crypto hashes,
 * and the openssl CLI verifies the signature. Every failure throws an Error that names the broken rule.
 */

export interface VerifiedPass {
  passJson: Record<string, unknown>;
  files: Map<string, Buffer>;
  manifest: Record<string, string>;
}

const PASS_STYLES = ['boardingPass', 'coupon', 'eventTicket', 'generic', 'storeCard'] as const;
const REQUIRED_TEXT_KEYS = [
  'passTypeIdentifier',
  'serialNumber',
  'teamIdentifier',
  'organizationName',
  'description',
] as const;
/** Files that are part of the bundle but not listed in the manifest. */
const UNLISTED = new Set(['manifest.json', 'signature']);
const LPROJ_DIR = /^[A-Za-z0-9_-]+\.lproj\/$/;
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

class PkpassError extends Error {
  override name = 'PkpassError';
}

function fail(rule: string): never {
  throw new PkpassError(rule);
}

export async function verifyPkpass(bundle: Buffer, wwdrPem: string): Promise<VerifiedPass> {
  const files = unzipBundle(bundle);
  for (const name of ['pass.json', 'manifest.json', 'signature']) {
    if (!files.has(name)) fail(`bundle: ${name} is missing`);
  }
  const manifest = checkManifest(files);
  const passJson = checkPassJson(files);
  checkIcon(files);
  await checkSignature(files, wwdrPem, passJson);
  return { passJson, files, manifest };
}

/** A zip whose entries are root files or files in <lang>.lproj/ folders, nothing else. */
function unzipBundle(bundle: Buffer): Map<string, Buffer> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(new Uint8Array(bundle));
  } catch (error) {
    fail(`zip: the bundle is not a zip archive (${(error as Error).message})`);
  }
  const files = new Map<string, Buffer>();
  for (const [name, data] of Object.entries(entries)) {
    if (name.startsWith('/') || name.includes('\\') || name.split('/').includes('..')) {
      fail(`zip: unsafe entry path "${name}" (absolute, backslash or ..)`);
    }
    if (name.endsWith('/')) {
      if (!LPROJ_DIR.test(name)) fail(`zip: directory "${name}" is not a <lang>.lproj folder`);
      continue;
    }
    const parts = name.split('/');
    const inLproj = parts.length === 2 && LPROJ_DIR.test(`${parts[0]}/`);
    if (parts.length !== 1 && !inLproj) {
      fail(`zip: "${name}" is neither at the root nor directly in a <lang>.lproj folder`);
    }
    files.set(name, Buffer.from(data));
  }
  return files;
}

/** Apple: manifest.json maps every file except itself and signature to its SHA-1 in hex. */
function checkManifest(files: Map<string, Buffer>): Record<string, string> {
  const manifest = parseJsonObject(files.get('manifest.json'), 'manifest.json');
  for (const [name, content] of files) {
    if (UNLISTED.has(name)) continue;
    const listed = manifest[name];
    if (listed === undefined) fail(`manifest: "${name}" is in the bundle but not listed in manifest.json`);
    if (typeof listed !== 'string') fail(`manifest: the hash of "${name}" is not a string`);
    const actual = createHash('sha1').update(content).digest('hex');
    if (listed.toLowerCase() !== actual) {
      fail(`manifest: SHA-1 of "${name}" is ${actual} but manifest.json says ${listed}`);
    }
  }
  for (const name of Object.keys(manifest)) {
    if (UNLISTED.has(name)) fail(`manifest: manifest.json must not list "${name}"`);
    if (!files.has(name)) fail(`manifest: "${name}" is listed in manifest.json but missing from the bundle`);
  }
  return manifest as Record<string, string>;
}

function checkPassJson(files: Map<string, Buffer>): Record<string, unknown> {
  const pass = parseJsonObject(files.get('pass.json'), 'pass.json');
  if (pass.formatVersion !== 1)
    fail(`pass.json: formatVersion must be 1, got ${JSON.stringify(pass.formatVersion)}`);
  for (const key of REQUIRED_TEXT_KEYS) {
    const value = pass[key];
    if (typeof value !== 'string' || value === '') fail(`pass.json: ${key} is required (a non-empty string)`);
  }
  const styles = PASS_STYLES.filter((style) => style in pass);
  if (styles.length !== 1) {
    fail(`pass.json: exactly one style of ${PASS_STYLES.join(', ')} is required, found ${styles.length}`);
  }
  return pass;
}

/** Apple: the icon is required; without it the pass does not install. It may be localized. */
function checkIcon(files: Map<string, Buffer>): void {
  const icons = [...files.entries()].filter(
    ([name]) => name === 'icon.png' || name.endsWith('.lproj/icon.png'),
  );
  if (icons.length === 0) fail('icon: icon.png is missing');
  for (const [name, content] of icons) {
    if (!content.subarray(0, PNG_MAGIC.length).equals(PNG_MAGIC)) fail(`icon: ${name} is not a PNG`);
  }
}

function parseJsonObject(content: Buffer | undefined, name: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(content?.toString('utf8') ?? '');
  } catch {
    fail(`${name}: not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${name}: not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * Apple: signature is a detached PKCS#7 signature of manifest.json, made with the Pass Type ID certificate,
 * carrying the WWDR intermediate (devices only hold Apple's root) and a signing time.
 */
async function checkSignature(
  files: Map<string, Buffer>,
  wwdrPem: string,
  passJson: Record<string, unknown>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pkpass-verify-'));
  try {
    await writeFile(join(dir, 'signature'), files.get('signature') ?? Buffer.alloc(0));
    await writeFile(join(dir, 'manifest.json'), files.get('manifest.json') ?? Buffer.alloc(0));
    await writeFile(join(dir, 'wwdr.pem'), wwdrPem);
    await opensslOrFail(
      dir,
      // biome-ignore format: one openssl invocation reads best on one line
      ['cms', '-verify', '-inform', 'DER', '-binary', '-purpose', 'any', '-in', 'signature', '-content', 'manifest.json', '-CAfile', 'wwdr.pem', '-signer', 'signer.pem', '-out', 'verified.out'],
      'signature: the detached CMS signature of manifest.json does not verify against the WWDR certificate',
    );
    checkSignerIdentity(await readFile(join(dir, 'signer.pem'), 'utf8'), passJson);
    const embedded = await opensslOrFail(
      dir,
      ['pkcs7', '-inform', 'DER', '-in', 'signature', '-print_certs'],
      'signature: not a PKCS#7 structure',
    );
    checkWwdrEmbedded(embedded, wwdrPem);
    const printed = await opensslOrFail(
      dir,
      ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', 'signature'],
      'signature: cannot print the CMS structure',
    );
    if (!printed.includes('signingTime')) fail('signature: the signer info has no signing time attribute');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function opensslOrFail(cwd: string, args: string[], rule: string): Promise<string> {
  try {
    const { stdout } = await run('openssl', args, { cwd, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    fail(`${rule}: ${stderr.trim().split('\n')[0] ?? ''}`);
  }
}

/** Apple: the certificate's UID and OU must be pass.json's passTypeIdentifier and teamIdentifier. */
function checkSignerIdentity(signerPem: string, passJson: Record<string, unknown>): void {
  const subject = new Map(
    new X509Certificate(signerPem).subject.split('\n').map((line) => {
      const at = line.indexOf('=');
      return [line.slice(0, at), line.slice(at + 1)] as const;
    }),
  );
  if (subject.get('UID') !== passJson.passTypeIdentifier) {
    fail(
      `signer: certificate UID ${subject.get('UID')} is not pass.json's passTypeIdentifier ${String(passJson.passTypeIdentifier)}`,
    );
  }
  if (subject.get('OU') !== passJson.teamIdentifier) {
    fail(
      `signer: certificate OU ${subject.get('OU')} is not pass.json's teamIdentifier ${String(passJson.teamIdentifier)}`,
    );
  }
}

function checkWwdrEmbedded(printedCerts: string, wwdrPem: string): void {
  const wwdr = new X509Certificate(wwdrPem).fingerprint256;
  const pems = printedCerts.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!pems.some((pem) => new X509Certificate(pem).fingerprint256 === wwdr)) {
    fail('signature: the WWDR intermediate certificate is not embedded in the signature');
  }
}
