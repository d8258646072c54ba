import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { PKPass } from 'passkit-generator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSignerCertificate, parseSignedData, signingTime, verifySigner } from '../../src/cli/cms.js';
import { validatePkpass } from '../../src/cli/validate.js';
import { InvalidError } from '../../src/errors.js';
import { loadTemplates, type Template } from '../../src/passes/templates.js';
import { projectRoot } from '../../src/paths.js';
import { bareContent, buildPassJson, buildSignedBundle, type PassContent } from '../../src/signing/bundle.js';
import type { SigningIdentity } from '../../src/signing/identity.js';
import { createManifestSigner, signDetached } from '../../src/signing/signature.js';
import { createSigner } from '../../src/signing/signer.js';
import { createTestPki, type TestPki } from '../support/pki.js';
import { verifyPkpass } from '../support/pkpass-verifier.js';
import { runOwned as run } from '../support/process.js';

/*
 * Our bundle (passkit-generator for pass.json and the file list; node:crypto for the manifest, the CMS signature
 * and the zip) against passkit-generator's own getAsBuffer() on the same pass: every entry but `signature` must
 * be byte for byte the same, except pass.strings, which we ship as the template has them and passkit-generator
 * rewrites from what its parser read: those must hold the same translations (and manifest.json their own SHA-1s).
 * The signature is checked by openssl, as Wallet would check it.
 */

const corpusDir = join(projectRoot, '..', 'shared', 'corpus', 'passkit-generator-models');

let pki: TestPki;
let identity: SigningIdentity;
let templates: Map<string, Template>;
let workDir: string;

beforeAll(async () => {
  pki = await createTestPki({ keyPassphrase: 'a passphrase' });
  identity = {
    signerCert: pki.signerCertPem,
    signerKey: pki.signerKeyPem,
    signerKeyPassphrase: 'a passphrase',
    wwdr: pki.wwdrPem,
    passTypeIdentifier: pki.passTypeIdentifier,
    teamIdentifier: pki.teamIdentifier,
    isDevelopment: true,
    notAfter: new Date(Date.now() + 86_400_000),
  };
  workDir = await mkdtemp(join(tmpdir(), 'signature-test-'));
  ({ templates } = await loadTemplates(join(projectRoot, 'models')));
  // A localised template: pass.strings in two languages (passkit-generator rewrites them; we do not), a localised image,
  // and personalisation files that passkit-generator drops because the pass has no NFC dictionary.
  const localized = join(workDir, 'models', 'localized.pass');
  await cp(join(projectRoot, 'models', 'event.pass'), localized, { recursive: true });
  for (const language of ['de', 'fr']) await mkdir(join(localized, `${language}.lproj`));
  await writeFile(join(localized, 'de.lproj', 'pass.strings'), '"Gate" = "Tor";\n"Seat" = "Platz";\n');
  await writeFile(join(localized, 'fr.lproj', 'pass.strings'), '/* comment */\n"Gate" = "Porte";\n');
  await cp(join(localized, 'logo.png'), join(localized, 'de.lproj', 'logo.png'));
  await writeFile(
    join(localized, 'personalization.json'),
    JSON.stringify({ requiredPersonalizationFields: ['PKPassPersonalizationFieldName'], description: 'x' }),
  );
  await cp(join(localized, 'logo.png'), join(localized, 'personalizationLogo@2x.png'));
  const extra = await loadTemplates(join(workDir, 'models'));
  for (const [name, template] of extra.templates) templates.set(name, template);
  const corpus = await loadTemplates(corpusDir);
  const examplePass = corpus.templates.get('examplePass');
  if (examplePass !== undefined) templates.set('examplePass', examplePass);
});

afterAll(async () => {
  await rm(pki.dir, { recursive: true, force: true });
  await rm(workDir, { recursive: true, force: true });
});

function content(name: string, extra: Partial<PassContent> = {}): PassContent {
  const template = templates.get(name);
  if (template === undefined) throw new Error(`no template ${name}`);
  const pass = {
    serialNumber: 'SERIAL-0001',
    authenticationToken: 'a-token-of-at-least-16-chars',
    webServiceURL: 'https://passes.example.com/passkit',
  };
  return { ...bareContent(template, pass), ...extra };
}

/** What the server did before: the same pass.json, zipped and signed by passkit-generator (node-forge). */
function stockBundle(passContent: PassContent): Buffer {
  const passJson = buildPassJson(passContent, identity);
  return new PKPass(
    { ...passContent.template.files, 'pass.json': Buffer.from(JSON.stringify(passJson)) },
    {
      wwdr: identity.wwdr,
      signerCert: identity.signerCert,
      signerKey: identity.signerKey,
      signerKeyPassphrase: identity.signerKeyPassphrase ?? '',
    },
  ).getAsBuffer();
}

/** The translations of a pass.strings file: `"key" = "value";` lines, comments and blank lines aside. */
function translations(strings: Buffer | undefined): Record<string, string> {
  const pairs = [...String(strings).matchAll(/^"(.+)"\s*=\s*"(.*)";$/gm)];
  return Object.fromEntries(pairs.map(([, key, value]) => [key, value]));
}

/** manifest.json without the SHA-1s of pass.strings files (compared by their translations instead). */
function manifestWithoutStrings(manifest: Buffer | undefined): Record<string, unknown> {
  const entries = Object.entries(JSON.parse(String(manifest)) as Record<string, unknown>);
  return Object.fromEntries(entries.filter(([file]) => !file.endsWith('.lproj/pass.strings')));
}

function entries(bundle: Buffer): Map<string, Buffer> {
  return new Map(
    Object.entries(unzipSync(new Uint8Array(bundle))).map(([name, data]) => [name, Buffer.from(data)]),
  );
}

const samples: Record<string, Partial<PassContent>> = {
  event: {
    fields: {
      event: 'Jazz Night',
      venue: 'Blue Hall',
      date: '2026-09-01T20:00:00+02:00',
      seat: '14',
      gate: 'C',
    },
    overrides: {
      relevantDate: '2026-09-01T18:00:00+02:00',
      barcodes: [{ format: 'PKBarcodeFormatQR', message: 'T' }],
    },
  },
  loyalty: {
    fields: { points: 1250, member: 'Ada Lovelace', tier: 'Gold' },
    changeMessages: { points: 'Now %@' },
  },
  coupon: { fields: { offer: '30% off' }, overrides: { expirationDate: '2026-11-01T00:00:00Z' } },
  boarding: { fields: { origin: 'LIS', destination: 'OSL', gate: 'D4' } },
  membership: {
    fields: { member: 'Grace Hopper' },
    overrides: { locations: [{ latitude: 59.9, longitude: 10.7 }] },
  },
  localized: { fields: { gate: 'Gate' } },
  examplePass: { overrides: { associatedStoreIdentifiers: [123456789] } },
};

describe('bundles built with node:crypto', () => {
  it.each(
    Object.keys(samples),
  )('%s: same files and bytes as passkit-generator, except signature', async (name) => {
    if (!templates.has(name)) return; // the shared corpus is optional
    const passContent = content(name, samples[name]);
    const stock = entries(stockBundle(passContent));
    const ours = entries(buildSignedBundle(passContent, identity));
    expect([...ours.keys()].sort()).toEqual([...stock.keys()].sort());
    for (const [file, bytes] of stock) {
      if (file === 'signature') continue;
      if (file.endsWith('.lproj/pass.strings')) {
        expect(translations(ours.get(file)), `${name}: ${file}`).toEqual(translations(bytes));
      } else if (file === 'manifest.json') {
        expect(manifestWithoutStrings(ours.get(file)), name).toEqual(manifestWithoutStrings(bytes));
      } else {
        expect(ours.get(file)?.equals(bytes), `${name}: ${file}`).toBe(true);
      }
    }
    await verifyPkpass(buildSignedBundle(passContent, identity), pki.wwdrPem);
  });

  it('keeps pass.strings as the template has them, and drops personalisation files without NFC', () => {
    const files = entries(buildSignedBundle(content('localized', samples.localized), identity));
    expect(files.get('de.lproj/pass.strings')?.toString()).toBe('"Gate" = "Tor";\n"Seat" = "Platz";\n');
    expect(files.get('fr.lproj/pass.strings')?.toString()).toBe('/* comment */\n"Gate" = "Porte";\n');
    expect(files.has('de.lproj/logo.png')).toBe(true);
    expect([...files.keys()].filter((file) => file.includes('personalization'))).toEqual([]);
  });

  it("merges a pass's own strings into its template's pass.strings, and adds languages the template lacks", async () => {
    const strings = { de: { Seat: 'Sitz', Row: 'Reihe "A"' }, es: { Gate: 'Puerta' } };
    const bundle = buildSignedBundle(content('localized', { ...samples.localized, strings }), identity);
    const { files, manifest } = await verifyPkpass(bundle, pki.wwdrPem);
    expect(files.get('de.lproj/pass.strings')?.toString()).toBe(
      '"Gate" = "Tor";\n"Seat" = "Sitz";\n"Row" = "Reihe \\"A\\"";\n',
    );
    expect(files.get('es.lproj/pass.strings')?.toString()).toBe('"Gate" = "Puerta";\n');
    expect(files.get('fr.lproj/pass.strings')?.toString()).toBe('/* comment */\n"Gate" = "Porte";\n');
    expect(Object.keys(manifest)).toEqual(
      expect.arrayContaining(['de.lproj/pass.strings', 'es.lproj/pass.strings']),
    );
    // The validate command (its own zip and CMS readers) reads the merged files as strings files too.
    const stringsFinding = validatePkpass(bundle, { wwdrPem: pki.wwdrPem }).find(
      (f) => f.rule === 'strings/syntax',
    );
    expect(stringsFinding).toMatchObject({ status: 'pass', detail: '3 pass.strings files read' });
  });

  it("refuses strings that would not make a bundle: a bad language, or a template's strings file it cannot read", async () => {
    expect(() =>
      buildSignedBundle(content('localized', { strings: { 'de/..': { a: 'b' } } }), identity),
    ).toThrow(/strings\.de\/\.\.: .*language/);
    expect(() =>
      buildSignedBundle(content('localized', { strings: { de: { a: 'b' }, DE: { a: 'c' } } }), identity),
    ).toThrow(/differ only in case/);
    const broken = templates.get('localized') as Template;
    const template = {
      ...broken,
      files: { ...broken.files, 'de.lproj/pass.strings': Buffer.from('"Gate" = ') },
    };
    expect(() =>
      buildSignedBundle({ ...content('localized'), template, strings: { de: { a: 'b' } } }, identity),
    ).toThrow(InvalidError);
  });

  it('signs with SHA-256 and the three signed attributes Wallet expects', () => {
    const at = new Date('2026-05-01T12:34:56Z');
    const manifest = Buffer.from('{"pass.json":"00"}');
    const signed = parseSignedData(signDetached(manifest, createManifestSigner(identity), at));
    expect(signed.detached).toBe(true);
    expect(signed.certificates.map((certificate) => certificate.subject)).toEqual(
      expect.arrayContaining([expect.stringContaining('UID=pass.test'), expect.stringContaining('OU=G4')]),
    );
    const [signer] = signed.signers;
    if (signer === undefined) throw new Error('no signer');
    expect(signer.digest).toBe('sha256');
    expect([...signer.attributes.keys()].sort()).toEqual([
      '1.2.840.113549.1.9.3', // contentType
      '1.2.840.113549.1.9.4', // messageDigest
      '1.2.840.113549.1.9.5', // signingTime
    ]);
    expect(signingTime(signer)).toEqual(at);
    // The project's own CMS reader (the validate CLI) names the signer by issuer and serial and verifies it.
    const certificate = findSignerCertificate(signer, signed.certificates);
    if (certificate === undefined) throw new Error('signer certificate not found by issuer and serial');
    expect(certificate.subject).toContain('UID=pass.test');
    expect(verifySigner(signer, certificate, manifest)).toEqual({ ok: true });
    expect(verifySigner(signer, certificate, Buffer.from('{}'))).toMatchObject({ ok: false });
  });

  it('writes GeneralizedTime from 2050 on, which openssl accepts', async () => {
    const manifest = Buffer.from('{}');
    const signature = signDetached(
      manifest,
      createManifestSigner(identity),
      new Date('2051-01-02T03:04:05Z'),
    );
    expect(signingTime(parseSignedData(signature).signers[0] as never)).toEqual(
      new Date('2051-01-02T03:04:05Z'),
    );
    await opensslVerify(signature, manifest, pki.wwdrPem);
  });

  it('signs with an EC key (ecdsa-with-SHA256) that openssl verifies', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'signature-ec-'));
    try {
      const openssl = (args: string[]) => run('openssl', args, { cwd: dir });
      await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
      // biome-ignore format: one openssl invocation reads best on one line
      await openssl(['req', '-x509', '-key', 'ca.key', '-days', '30', '-subj', '/CN=EC Test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-out', 'ca.pem']);
      await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'signer.key']);
      await openssl([
        'req',
        '-new',
        '-key',
        'signer.key',
        '-subj',
        '/UID=pass.ec/OU=EC',
        '-out',
        'signer.csr',
      ]);
      // biome-ignore format: one openssl invocation reads best on one line
      await openssl(['x509', '-req', '-in', 'signer.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x00ff112233445566778899aabbccddeeff', '-days', '30', '-out', 'signer.pem']);
      const [signerCert, signerKey, wwdr] = await Promise.all(
        ['signer.pem', 'signer.key', 'ca.pem'].map((file) => readFile(join(dir, file), 'utf8')),
      );
      const manifest = Buffer.from('{"icon.png":"abc"}');
      const signature = signDetached(
        manifest,
        createManifestSigner({ signerCert, signerKey, wwdr } as SigningIdentity),
      );
      await opensslVerify(signature, manifest, wwdr as string);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

async function opensslVerify(signature: Buffer, content: Buffer, caPem: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'signature-verify-'));
  try {
    await writeFile(join(dir, 'signature'), signature);
    await writeFile(join(dir, 'content'), content);
    await writeFile(join(dir, 'ca.pem'), caPem);
    // biome-ignore format: one openssl invocation reads best on one line
    await run('openssl', ['cms', '-verify', '-inform', 'DER', '-binary', '-purpose', 'any', '-in', 'signature', '-content', 'content', '-CAfile', 'ca.pem', '-out', '/dev/null'], { cwd: dir });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('the signer (worker threads)', () => {
  it('signs many passes at once in worker threads, each a bundle Wallet accepts', async () => {
    const signer = createSigner({ threads: 2 });
    try {
      const bundles = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          signer.sign(content(i % 2 ? 'event' : 'loyalty', { serialNumber: `S-${i}` }), identity),
        ),
      );
      for (const [i, bundle] of bundles.entries()) {
        const { passJson } = await verifyPkpass(bundle, pki.wwdrPem);
        expect(passJson.serialNumber).toBe(`S-${i}`);
      }
    } finally {
      await signer.close();
    }
  });

  it('rejects with the InvalidError the build throws, naming the culprit', async () => {
    const signer = createSigner({ threads: 1 });
    try {
      const error = await signer
        .sign(content('loyalty', { overrides: { foregroundColor: 'white' } }), identity)
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(InvalidError);
      expect((error as Error).message).toMatch(/overrides\.foregroundColor/);
      // The worker survives a refused pass.
      await verifyPkpass(await signer.sign(content('coupon'), identity), pki.wwdrPem);
    } finally {
      await signer.close();
    }
  });

  it('rejects passes in flight when closed, and starts again when used after', async () => {
    const signer = createSigner({ threads: 1 });
    const inFlight = signer.sign(content('event'), identity).catch((caught: unknown) => caught);
    await signer.close();
    expect(await inFlight).toBeInstanceOf(Error);
    await verifyPkpass(await signer.sign(content('event'), identity), pki.wwdrPem);
    await signer.close();
  });

  it('signs the bundle buildSignedBundle builds on the calling thread', async () => {
    const signer = createSigner({ threads: 1 });
    try {
      const signed = await signer.sign(content('membership'), identity);
      const { passJson } = await verifyPkpass(signed, pki.wwdrPem);
      expect(passJson.serialNumber).toBe('SERIAL-0001');
      const here = entries(buildSignedBundle(content('membership'), identity));
      for (const [file, bytes] of entries(signed)) {
        if (file !== 'signature') expect(here.get(file)?.equals(bytes), file).toBe(true);
      }
    } finally {
      await signer.close();
    }
  });
});
