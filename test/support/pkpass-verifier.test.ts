import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { PKPass } from 'passkit-generator';
import pino from 'pino';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSigningIdentity } from '../../src/signing/identity.js';
import { createTestPki, type TestPki } from './pki.js';
import { verifyPkpass } from './pkpass-verifier.js';
import { runOwned } from './process.js';

const cleanup: string[] = [];

function iconPng(): Buffer {
  const png = new PNG({ width: 29, height: 29 });
  png.data.fill(0x80);
  return PNG.sync.write(png);
}

interface Signer {
  wwdr: string;
  signerCert: string;
  signerKey: string;
  signerKeyPassphrase?: string;
  passTypeIdentifier: string;
  teamIdentifier: string;
}

function signerOf(pki: TestPki): Signer {
  return {
    wwdr: pki.wwdrPem,
    signerCert: pki.signerCertPem,
    signerKey: pki.signerKeyPem,
    passTypeIdentifier: pki.passTypeIdentifier,
    teamIdentifier: pki.teamIdentifier,
  };
}

/** A pass built and signed by passkit-generator itself, from a tiny in-memory model. */
function buildPass(signer: Signer): Buffer {
  const passJson = {
    formatVersion: 1,
    passTypeIdentifier: signer.passTypeIdentifier,
    teamIdentifier: signer.teamIdentifier,
    serialNumber: 'SERIAL-1',
    organizationName: 'Test Org',
    description: 'A test pass',
    generic: { primaryFields: [{ key: 'name', label: 'Name', value: 'Ada' }] },
  };
  const pass = new PKPass(
    { 'icon.png': iconPng(), 'pass.json': Buffer.from(JSON.stringify(passJson)) },
    {
      wwdr: signer.wwdr,
      signerCert: signer.signerCert,
      signerKey: signer.signerKey,
      ...(signer.signerKeyPassphrase === undefined
        ? {}
        : { signerKeyPassphrase: signer.signerKeyPassphrase }),
    },
  );
  pass.localize('en', { name: 'Name' });
  return pass.getAsBuffer();
}

/** Re-zips a bundle after changing its entries, keeping manifest.json and signature as they were. */
function tamper(bundle: Buffer, change: (files: Record<string, Uint8Array>) => void): Buffer {
  const files = unzipSync(new Uint8Array(bundle));
  change(files);
  return Buffer.from(zipSync(files));
}

/** Re-signs manifest.json with the openssl CLI, with extra `openssl cms -sign` flags, and swaps the signature in. */
async function resignWithOpenssl(original: Buffer, signer: TestPki, flags: string[]): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'pkpass-resign-'));
  cleanup.push(dir);
  const files = unzipSync(new Uint8Array(original));
  await writeFile(join(dir, 'manifest.json'), files['manifest.json'] ?? new Uint8Array());
  await runOwned(
    'openssl',
    [
      'cms',
      '-sign',
      '-binary',
      '-outform',
      'DER',
      '-md',
      'sha256',
      '-in',
      'manifest.json',
      '-out',
      'signature',
      '-signer',
      join(signer.certificatesDir, 'signerCert.pem'),
      '-inkey',
      join(signer.certificatesDir, 'signerKey.pem'),
      ...flags,
    ],
    { cwd: dir },
  );
  files.signature = new Uint8Array(await readFile(join(dir, 'signature')));
  return Buffer.from(zipSync(files));
}

async function rejection(bundle: Buffer, wwdr: string): Promise<string> {
  const error = await verifyPkpass(bundle, wwdr).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(Error);
  return (error as Error).message;
}

let pki: TestPki;
let bundle: Buffer;

beforeAll(async () => {
  pki = await createTestPki();
  cleanup.push(pki.dir);
  bundle = buildPass(signerOf(pki));
});

afterAll(async () => {
  await Promise.all(cleanup.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('verifyPkpass', () => {
  it('accepts a pass signed by passkit-generator with the test PKI', async () => {
    const verified = await verifyPkpass(bundle, pki.wwdrPem);
    expect(verified.passJson.passTypeIdentifier).toBe(pki.passTypeIdentifier);
    expect(verified.passJson.teamIdentifier).toBe(pki.teamIdentifier);
    expect(Object.keys(verified.manifest).sort()).toEqual(['en.lproj/pass.strings', 'icon.png', 'pass.json']);
    expect(verified.files.has('signature')).toBe(true);
  });

  it('accepts a pass signed with an encrypted key', async () => {
    const encrypted = await createTestPki({ keyPassphrase: 'secret' });
    cleanup.push(encrypted.dir);
    const signed = buildPass({ ...signerOf(encrypted), signerKeyPassphrase: 'secret' });
    await expect(verifyPkpass(signed, encrypted.wwdrPem)).resolves.toBeDefined();
  });

  it('rejects a pass.json changed after signing (manifest hash)', async () => {
    const changed = tamper(bundle, (files) => {
      const passJson = files['pass.json'];
      if (!passJson) throw new Error('no pass.json');
      const copy = new Uint8Array(passJson);
      copy[copy.length - 2] = (copy[copy.length - 2] ?? 0) ^ 0x01;
      files['pass.json'] = copy;
    });
    expect(await rejection(changed, pki.wwdrPem)).toMatch(/^manifest: SHA-1 of "pass.json"/);
  });

  it('rejects a bundle without icon.png (listed in the manifest, so missing)', async () => {
    const changed = tamper(bundle, (files) => {
      delete files['icon.png'];
    });
    expect(await rejection(changed, pki.wwdrPem)).toContain(
      '"icon.png" is listed in manifest.json but missing',
    );
  });

  it('rejects a file the manifest does not list', async () => {
    const changed = tamper(bundle, (files) => {
      files['extra.png'] = strToU8('not listed');
    });
    expect(await rejection(changed, pki.wwdrPem)).toContain('"extra.png" is in the bundle but not listed');
  });

  it('rejects files outside the root and <lang>.lproj folders', async () => {
    const changed = tamper(bundle, (files) => {
      files['images/logo.png'] = strToU8('x');
    });
    expect(await rejection(changed, pki.wwdrPem)).toMatch(/^zip: "images\/logo.png" is neither at the root/);
  });

  it('rejects a bundle that is not a zip', async () => {
    expect(await rejection(Buffer.from('hello'), pki.wwdrPem)).toMatch(/^zip: /);
  });

  it('rejects a pass signed under a different CA', async () => {
    const otherCa = await createTestPki();
    cleanup.push(otherCa.dir);
    const foreign = buildPass(signerOf(otherCa));
    expect(await rejection(foreign, pki.wwdrPem)).toMatch(/^signature: the detached CMS signature/);
  });

  it('accepts a signature made by openssl itself with the WWDR embedded (control for the next two)', async () => {
    const resigned = await resignWithOpenssl(bundle, pki, ['-certfile', pki.wwdrPath]);
    await expect(verifyPkpass(resigned, pki.wwdrPem)).resolves.toBeDefined();
  });

  it('rejects a signature without the signing time attribute', async () => {
    const resigned = await resignWithOpenssl(bundle, pki, ['-certfile', pki.wwdrPath, '-noattr']);
    expect(await rejection(resigned, pki.wwdrPem)).toContain('no signing time');
  });

  it('rejects a signature that does not embed the WWDR intermediate', async () => {
    const resigned = await resignWithOpenssl(bundle, pki, []);
    expect(await rejection(resigned, pki.wwdrPem)).toContain('WWDR intermediate certificate is not embedded');
  });

  it("rejects a certificate whose UID is not pass.json's passTypeIdentifier", async () => {
    const other = await createTestPki({ passTypeIdentifier: 'pass.test.other' });
    cleanup.push(other.dir);
    const mismatched = buildPass({ ...signerOf(other), passTypeIdentifier: 'pass.test.passkit-server' });
    expect(await rejection(mismatched, other.wwdrPem)).toMatch(/^signer: certificate UID pass.test.other/);
  });

  it('accepts a pass signed with the generated development identity, against its own wwdr', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'pkpass-verifier-dev-'));
    cleanup.push(dataDir);
    const identity = await loadSigningIdentity({
      certificatesDir: join(dataDir, 'no-certificates'),
      dataDir,
      production: false,
      log: pino({ level: 'silent' }),
    });
    const signed = buildPass(identity);
    const verified = await verifyPkpass(signed, identity.wwdr);
    expect(verified.passJson.teamIdentifier).toBe('DEVTEAM000');
    // ...and it is not accepted under any other CA (e.g. a real WWDR).
    expect(await rejection(signed, pki.wwdrPem)).toMatch(/^signature: /);
  });
});
