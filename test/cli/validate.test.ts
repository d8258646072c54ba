import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '../../src/cli/findings.js';
import { exitCode, renderFindings } from '../../src/cli/findings.js';
import { validatePkpass } from '../../src/cli/validate.js';
import { loadTemplates, type Template } from '../../src/passes/templates.js';
import { projectRoot } from '../../src/paths.js';
import { bareContent, buildSignedBundle, type PassContent } from '../../src/signing/bundle.js';
import type { SigningIdentity } from '../../src/signing/identity.js';
import { createTestPki, identityFromPki, type TestPki } from '../support/pki.js';
import { contentFiles, type Files, rawPkpass, rawZip, readModel, unzip, withPassJson } from './raw-pkpass.js';

/*
 * `validate` against passes built by our own signer (all green), by hand with openssl (one broken rule each),
 * and from the third-party corpus (passkit-generator's example models).
 */

let pki: TestPki;
let otherPki: TestPki;
let expiredPki: TestPki;
let identity: SigningIdentity;
let templates: Map<string, Template>;
/** The content files (pass.json and images) of a good loyalty pass signed by the server. */
let good: Files;

const corpusDir = join(projectRoot, '..', 'shared', 'corpus', 'passkit-generator-models');

function content(template: Template, overrides: Record<string, unknown> = {}): PassContent {
  const pass = {
    serialNumber: 'VALIDATE-1',
    authenticationToken: 'validate-token-0123456789',
    webServiceURL: 'https://passes.example.com',
  };
  return { ...bareContent(template, pass), overrides };
}

beforeAll(async () => {
  [pki, otherPki, expiredPki] = await Promise.all([
    createTestPki(),
    createTestPki(),
    createTestPki({ expired: true }),
  ]);
  identity = identityFromPki(pki);
  ({ templates } = await loadTemplates(join(projectRoot, 'models')));
  const loyalty = templates.get('loyalty');
  if (loyalty === undefined) throw new Error('no loyalty template');
  good = contentFiles(unzip(buildSignedBundle(content(loyalty), identity)));
});

afterAll(async () => {
  await Promise.all([pki, otherPki, expiredPki].map((p) => rm(p.dir, { recursive: true, force: true })));
});

const failedRules = (findings: Finding[]) => [
  ...new Set(findings.filter((f) => f.status === 'fail').map((f) => f.rule)),
];

function validate(bundle: Buffer): Finding[] {
  return validatePkpass(bundle, { wwdrPem: pki.wwdrPem });
}

describe('passes the server signs', () => {
  it('every template in models/ validates with no failure and no warning', async () => {
    expect(templates.size).toBeGreaterThan(0);
    for (const template of templates.values()) {
      const findings = validate(buildSignedBundle(content(template), identity));
      expect(
        findings.filter((f) => f.status !== 'pass'),
        template.name,
      ).toEqual([]);
      expect(exitCode(findings)).toBe(0);
    }
  });

  it('a pass built by hand with openssl from the same files validates too', async () => {
    const findings = validate(await rawPkpass(good, pki));
    expect(failedRules(findings)).toEqual([]);
    expect(findings.map((f) => f.rule)).toEqual(
      expect.arrayContaining(['signature/verifies', 'signature/signing-time', 'signer/chain']),
    );
  });

  it('without --wwdr, a chain that does not lead to Apple WWDR fails signer/chain with a fix', async () => {
    const findings = validatePkpass(await rawPkpass(good, pki));
    expect(failedRules(findings)).toEqual(['signer/chain']);
    const chain = findings.find((f) => f.rule === 'signer/chain');
    expect(chain?.fix).toMatch(/--wwdr/);
    expect(chain?.why).toMatch(/Apple Root CA/);
  });

  it('renders ✓/✗ lines with why and fix, and --json as one document', async () => {
    const findings = validate(
      await rawPkpass(
        withPassJson(good, (p) => {
          p.backgroundColor = '#ff0000';
        }),
        pki,
      ),
    );
    const human = renderFindings('validate x.pkpass', findings, { json: false });
    expect(human).toMatch(/✓ signature\/verifies: /);
    expect(human).toMatch(/✗ pass\.json\/colors: backgroundColor is "#ff0000"/);
    expect(human).toMatch(/ {4}why: .*RGB/);
    expect(human).toMatch(/ {4}fix: .*rgb\(23, 187, 82\)/);
    const json = JSON.parse(renderFindings('validate x.pkpass', findings, { json: true })) as {
      ok: boolean;
      summary: { fail: number };
      findings: Finding[];
    };
    expect(json.ok).toBe(false);
    expect(json.summary.fail).toBe(1);
    expect(exitCode(findings)).toBe(1);
  });
});

/** The rule that must fail alone, the broken pass, and the CA to validate against (the test PKI's by default). */
type Case = [rule: string, make: () => Promise<Buffer>, trusted?: () => TestPki];

const brokenCases: Record<string, Case> = {
  'a file changed after signing': [
    'manifest/sha1',
    () =>
      rawPkpass(good, pki, {
        after: (f) =>
          f.set(
            'pass.json',
            Buffer.from((f.get('pass.json') as Buffer).toString().replace('VALIDATE-1', 'VALIDATE-2')),
          ),
      }),
  ],
  'a file missing from the manifest': [
    'manifest/complete',
    () =>
      rawPkpass(good, pki, {
        manifest: (m) => {
          delete m['logo.png'];
        },
      }),
  ],
  'an extra file added after signing': [
    'manifest/complete',
    () => rawPkpass(good, pki, { after: (f) => f.set('extra.txt', Buffer.from('hello')) }),
  ],
  'a manifest entry without its file': [
    'manifest/complete',
    () =>
      rawPkpass(good, pki, {
        manifest: (m) => {
          m['ghost.png'] = '0'.repeat(40);
        },
      }),
  ],
  'no icon.png': ['images/icon', () => rawPkpass(withoutFile(good, 'icon.png'), pki)],
  'a JPEG named logo.png': [
    'images/png',
    () => rawPkpass(new Map(good).set('logo.png', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16])), pki),
  ],
  'a pass.strings with a string left open': [
    'strings/syntax',
    () =>
      rawPkpass(
        new Map(good).set('de.lproj/pass.strings', Buffer.from('"Gate" = "Tor";\n"Seat" = "Platz;\n')),
        pki,
      ),
  ],
  'a signature over other content': [
    'signature/verifies',
    () => rawPkpass(good, pki, { signedContent: Buffer.from('{}') }),
  ],
  'a signer from another CA': ['signer/chain', () => rawPkpass(good, otherPki)],
  'no signing time': ['signature/signing-time', () => rawPkpass(good, pki, { noSigningTime: true })],
  'no WWDR in the signature': ['signature/certificates', () => rawPkpass(good, pki, { noWwdr: true })],
  'an expired signer': ['signer/validity', () => rawPkpass(good, expiredPki), () => expiredPki],
  'passTypeIdentifier not the certificate UID': [
    'signer/pass-type-identifier',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          p.passTypeIdentifier = 'pass.other.id';
        }),
        pki,
      ),
  ],
  'teamIdentifier not the certificate OU': [
    'signer/team-identifier',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          p.teamIdentifier = 'OTHERTEAM1';
        }),
        pki,
      ),
  ],
  'two styles': [
    'pass.json/style',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          p.generic = { primaryFields: [] };
        }),
        pki,
      ),
  ],
  'a duplicate field key': [
    'pass.json/unique-field-keys',
    () => rawPkpass(withPassJson(good, duplicateFirstField), pki),
  ],
  'a changeMessage without %@': [
    'pass.json/fields',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          firstField(p).changeMessage = 'Your points changed';
        }),
        pki,
      ),
  ],
  'a string value in a number field': [
    'pass.json/fields',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          firstField(p).value = '1250';
        }),
        pki,
      ),
  ],
  'a hex color': [
    'pass.json/colors',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          p.foregroundColor = '#ffffff';
        }),
        pki,
      ),
  ],
  'a date without time zone': [
    'pass.json/dates',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          p.expirationDate = '2030-01-01T10:00:00';
        }),
        pki,
      ),
  ],
  'webServiceURL without authenticationToken': [
    'pass.json/webServiceURL-with-authenticationToken',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          delete p.authenticationToken;
        }),
        pki,
      ),
  ],
  'an http webServiceURL': [
    'pass.json/webServiceURL-https',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          p.webServiceURL = 'http://passes.example.com';
        }),
        pki,
      ),
  ],
  'a short authenticationToken': [
    'pass.json/authenticationToken-length',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          p.authenticationToken = 'short-token';
        }),
        pki,
      ),
  ],
  'formatVersion as a string': [
    'pass.json/formatVersion',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          p.formatVersion = '1';
        }),
        pki,
      ),
  ],
  'no organizationName': [
    'pass.json/required-keys',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          delete p.organizationName;
        }),
        pki,
      ),
  ],
  'a barcode without messageEncoding': [
    'pass.json/barcodes',
    () =>
      rawPkpass(
        withPassJson(good, (p) => {
          p.barcodes = [{ format: 'PKBarcodeFormatQR', message: 'x' }];
        }),
        pki,
      ),
  ],
  'a .DS_Store (listed in the manifest)': [
    'zip/junk',
    () => rawPkpass(new Map(good).set('.DS_Store', Buffer.from('junk')), pki),
  ],
  'a file in a sub folder (listed in the manifest)': [
    'zip/layout',
    () => rawPkpass(new Map(good).set('images/extra.png', good.get('logo.png') as Buffer), pki),
  ],
  'a symbolic link': [
    'zip/layout',
    () =>
      rawPkpass(good, pki, {
        entries: { 'link.png': [new TextEncoder().encode('icon.png'), { os: 3, attrs: 0o120777 << 16 }] },
      }),
  ],
  'not a zip': ['zip/archive', async () => Buffer.from('this is not a zip archive at all')],
};

function withoutFile(files: Files, name: string): Files {
  const copy = new Map(files);
  copy.delete(name);
  return copy;
}

/** The loyalty pass's first primary field: points, a number field (numberStyle). */
function firstField(passJson: Record<string, unknown>): Record<string, unknown> {
  const style = passJson.storeCard as Record<string, Array<Record<string, unknown>>>;
  return style.primaryFields?.[0] ?? {};
}

function duplicateFirstField(passJson: Record<string, unknown>): void {
  const style = passJson.storeCard as Record<string, Array<Record<string, unknown>>>;
  const first = style.primaryFields?.[0] ?? style.secondaryFields?.[0];
  style.backFields = [...(style.backFields ?? []), { ...first }];
}

describe('broken passes fail exactly their rule', () => {
  it.each(Object.entries(brokenCases))('%s → %s', async (_name, [rule, make, trusted]) => {
    const findings = validatePkpass(await make(), { wwdrPem: (trusted?.() ?? pki).wwdrPem });
    expect(failedRules(findings)).toEqual([rule]);
    for (const finding of findings.filter((f) => f.status === 'fail')) {
      expect(finding.detail.length).toBeGreaterThan(0);
      expect(finding.fix ?? '').not.toBe('');
      expect(finding.why ?? '').not.toBe('');
    }
  });

  it('http://localhost is a warning, not a failure', async () => {
    const findings = validate(
      await rawPkpass(
        withPassJson(good, (p) => {
          p.webServiceURL = 'http://localhost:3000';
        }),
        pki,
      ),
    );
    expect(failedRules(findings)).toEqual([]);
    expect(findings.filter((f) => f.status === 'warn').map((f) => f.rule)).toEqual([
      'pass.json/webServiceURL-https',
    ]);
  });
});

describe('zip bombs are refused before they are inflated', () => {
  const MB = 1024 * 1024;
  // validate's documented limits (docs/troubleshooting.md).
  const MAX_ENTRY_BYTES = 16 * MB;
  const MAX_TOTAL_BYTES = 64 * MB;
  const zeros = (bytes: number) => deflateRawSync(Buffer.alloc(bytes));
  const failures = (findings: Finding[], rule: string) =>
    findings.filter((f) => f.status === 'fail' && f.rule === rule).map((f) => f.detail);

  it('40 entries pointing at one 64 MB deflated entry (a 67 kB file): entries that share data', () => {
    const stored = zeros(64 * MB);
    const bomb = rawZip(
      Array.from({ length: 40 }, (_, i) => ({
        name: `${i}.png`,
        stored,
        method: 8 as const,
        originalSize: 64 * MB,
        ...(i > 0 ? { sharesWith: 0 } : {}),
      })),
    );
    expect(bomb.length).toBeLessThan(100 * 1024);
    const findings = validate(bomb);
    expect(failedRules(findings)).toEqual(['zip/archive']);
    expect(failures(findings, 'zip/archive')[0]).toMatch(/"0\.png" and "1\.png" share data/);
  });

  it(`entries that declare more than ${MAX_TOTAL_BYTES} bytes in total, each under the per-entry limit`, () => {
    const stored = zeros(15 * MB);
    const entries = Array.from({ length: 5 }, (_, i) => ({
      name: `${i}.png`,
      stored,
      method: 8 as const,
      originalSize: 15 * MB,
    }));
    const findings = validate(rawZip(entries));
    expect(failedRules(findings)).toEqual(['zip/archive']);
    expect(failures(findings, 'zip/archive')[0]).toMatch(/declare 78643200 bytes uncompressed in total/);
  });

  it('an entry over the per-entry limit, an entry that inflates past its size, one that holds less', () => {
    const findings = validate(
      rawZip([
        { name: 'big.png', stored: zeros(MAX_ENTRY_BYTES + 1), method: 8, originalSize: MAX_ENTRY_BYTES + 1 },
        { name: 'liar.png', stored: zeros(10 * MB), method: 8, originalSize: 1000 },
        { name: 'short.png', stored: zeros(1000), method: 8, originalSize: 2000 },
        { name: 'stored.png', stored: Buffer.alloc(10), method: 0, originalSize: 20 },
      ]),
    );
    expect(failures(findings, 'zip/layout')).toEqual([
      `"big.png" cannot be read: ${MAX_ENTRY_BYTES + 1} bytes uncompressed, more than the ${MAX_ENTRY_BYTES} validate reads`,
      '"liar.png" cannot be read: inflates to more than the 1000 bytes it declares',
      '"short.png" cannot be read: holds 1000 bytes, not the 2000 it declares',
      '"stored.png" cannot be read: holds 10 bytes, not the 20 it declares',
    ]);
  });
});

// passkit-generator's example models (MIT, shared read-only corpus beside the repository).
describe.skipIf(!existsSync(corpusDir))('the passkit-generator corpus', () => {
  /** What validate finds in each model signed as is (with our test identity); [] = Wallet would accept it. */
  const expected: Record<string, string[]> = {
    exampleBooking: ['pass.json/style'],
    examplePass: ['pass.json/appLaunchURL-with-associatedStoreIdentifiers'],
    glowTime: ['pass.json/colors'],
    posterEventTicketWithAdmissionLevel: [],
    posterEventTicketWithNewSeats: ['pass.json/colors'],
    posterEventTicketWithUpcomingEvents: ['pass.json/colors'],
    semanticBoardingPass: ['pass.json/style'],
  };

  it('has an expectation for every model', async () => {
    const models = (await readdir(corpusDir))
      .filter((name) => name.endsWith('.pass'))
      .map((name) => name.slice(0, -5));
    expect(models.sort()).toEqual(Object.keys(expected).sort());
  });

  it.each(Object.entries(expected))('%s signed as is fails %j', async (name, rules) => {
    const model = await readModel(join(corpusDir, `${name}.pass`));
    const files = withPassJson(model, (p) => {
      p.passTypeIdentifier = pki.passTypeIdentifier;
      p.teamIdentifier = pki.teamIdentifier;
      // Set by the signing tool, as passkit-generator does.
      p.serialNumber = 'CORPUS-1';
    });
    expect(failedRules(validate(await rawPkpass(files, pki)))).toEqual(rules);
  });

  it('examplePass signed by the server (with the override it needs) validates', async () => {
    const { templates: corpus } = await loadTemplates(corpusDir);
    const template = corpus.get('examplePass');
    if (template === undefined) throw new Error('examplePass did not load');
    const bundle = buildSignedBundle(
      content(template, { associatedStoreIdentifiers: [123456789] }),
      identity,
    );
    const findings = validate(bundle);
    expect(failedRules(findings)).toEqual([]);
    expect(findings.find((f) => f.rule === 'zip/layout')?.detail).toMatch(/lproj/);
  });
});
