import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors.js';
import { loadTemplates, type Template } from '../../src/passes/templates.js';
import { projectRoot } from '../../src/paths.js';
import {
  bareContent,
  buildSignedBundle,
  checkWalletAcceptsTemplate,
  type PassContent,
} from '../../src/signing/bundle.js';
import type { SigningIdentity } from '../../src/signing/identity.js';
import { createTestPki, identityFromPki, type TestPki } from '../support/pki.js';
import { verifyPkpass } from '../support/pkpass-verifier.js';

/*
 * passkit-generator's own example models (MIT, shared read-only corpus, not copied into the project) used as
 * templates. Each either signs into a bundle Wallet accepts or is refused with an InvalidError naming what Wallet,
 * or the signer, would reject. What each one does, and why, is stated below.
 */
const corpusDir = join(projectRoot, '..', 'shared', 'corpus', 'passkit-generator-models');

/** The models Wallet refuses even after conversion, each with the key at fault. */
const refused: Record<string, { refused: RegExp; why: string }> = {
  exampleBooking: {
    refused: /pass\.json boardingPass\.transitType is missing/,
    why: 'boardingPass is {}: Wallet requires a transitType on boarding passes',
  },
  examplePass: {
    refused: /appLaunchURL needs associatedStoreIdentifiers/,
    why: 'appLaunchURL without associatedStoreIdentifiers: Apple requires both (an override supplying them fixes it, below)',
  },
  glowTime: {
    refused: /pass\.json passLastModDate: the signer \(passkit-generator\) would drop this value/,
    why: "passLastModDate is no key of Apple's pass.json, and passkit-generator would sign the pass without it",
  },
  posterEventTicketWithAdmissionLevel: {
    refused:
      /pass\.json semantics\.updatedEventStartDate: the signer \(passkit-generator\) would drop this value/,
    why: 'passkit-generator 3.6.1 does not know this iOS 18 semantic key and would silently sign a pass without it',
  },
  semanticBoardingPass: {
    refused: /pass\.json boardingPass\.transitType is missing/,
    why: 'boardingPass is {}: Wallet requires a transitType on boarding passes',
  },
};

/** What reading the model converts (src/passes/model-conversion.ts); models not listed convert nothing. */
const HEX_POSTER = [
  'backgroundColor: #ffffff → rgb(255, 255, 255)',
  'foregroundColor: #000000 → rgb(0, 0, 0)',
  'labelColor: #FF0000 → rgb(255, 0, 0)',
  'semantics.seats[0].seatSectionColor: #FFD700 → rgb(255, 215, 0)',
];
const conversions: Record<string, string[]> = {
  glowTime: [
    'foregroundColor: #ffffff → rgb(255, 255, 255)',
    'backgroundColor: #1595d7 → rgb(21, 149, 215)',
    'labelColor: #ffffff → rgb(255, 255, 255)',
    'barcode → barcodes[0] (barcode is deprecated since iOS 9)',
  ],
  posterEventTicketWithNewSeats: HEX_POSTER,
  posterEventTicketWithUpcomingEvents: HEX_POSTER,
};

/** The models that sign as they are once converted: their colours were hex, which Wallet ignores. */
const signed = ['posterEventTicketWithNewSeats', 'posterEventTicketWithUpcomingEvents'];

let pki: TestPki;
let identity: SigningIdentity;
let templates: Map<string, Template>;

beforeAll(async () => {
  pki = await createTestPki();
  identity = identityFromPki(pki);
  const loaded = await loadTemplates(corpusDir);
  expect(loaded.problems).toEqual([]);
  templates = loaded.templates;
});

afterAll(async () => {
  await rm(pki.dir, { recursive: true, force: true });
});

function content(template: Template, overrides: Record<string, unknown> = {}): PassContent {
  const pass = {
    serialNumber: 'CORPUS-1',
    authenticationToken: 'corpus-token-0123456789',
    webServiceURL: 'https://passes.example.com',
  };
  return { ...bareContent(template, pass), overrides };
}

// Outside this repository (beside it, as in CI); .ci/run fails when it is missing, so CI never skips these.
describe.skipIf(!existsSync(corpusDir))('the passkit-generator corpus', () => {
  it('has an expectation for every model', async () => {
    const models = (await readdir(corpusDir))
      .filter((name) => name.endsWith('.pass'))
      .map((name) => name.slice(0, -5));
    expect(models.sort()).toEqual([...Object.keys(refused), ...signed].sort());
    expect([...templates.keys()].sort()).toEqual(models.sort());
  });

  it('lists what reading each model converted', () => {
    for (const [name, template] of templates)
      expect(template.conversions, name).toEqual(conversions[name] ?? []);
  });

  const cases = Object.entries(refused).map(([name, { refused, why }]) => [name, why, refused] as const);
  it.each(cases)('%s is refused: %s', async (name, _why, refused) => {
    const template = templates.get(name);
    if (template === undefined) throw new Error(`${name} did not load`);
    expect(() => checkWalletAcceptsTemplate(template, identity)).toThrow(InvalidError);
    expect(() => checkWalletAcceptsTemplate(template, identity)).toThrow(refused);
    // Signing refuses for the same reason, never with a different pass or a 500.
    expect(() => buildSignedBundle(content(template), identity)).toThrow(refused);
  });

  it('signs the three models that lack what Wallet requires once an override beside each supplies it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'corpus-overrides-'));
    const overrides: Record<string, Record<string, unknown>> = {
      exampleBooking: { boardingPass: { transitType: 'PKTransitTypeAir' } },
      semanticBoardingPass: { boardingPass: { transitType: 'PKTransitTypeTrain' } },
      examplePass: { associatedStoreIdentifiers: [123456789] },
    };
    try {
      for (const [name, override] of Object.entries(overrides)) {
        await cp(join(corpusDir, `${name}.pass`), join(dir, `${name}.pass`), { recursive: true });
        await writeFile(join(dir, `${name}.override.json`), JSON.stringify(override));
      }
      const loaded = await loadTemplates(dir);
      expect(loaded.problems).toEqual([]);
      for (const [name, override] of Object.entries(overrides)) {
        const template = loaded.templates.get(name) as Template;
        expect(template.conversions[0], name).toMatch(/: set by the override$/);
        expect(() => checkWalletAcceptsTemplate(template, identity), name).not.toThrow();
        const { passJson } = await verifyPkpass(buildSignedBundle(content(template), identity), pki.wwdrPem);
        expect(passJson, name).toMatchObject(override);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each(signed)('%s signs once its hex colours are rgb() triples', async (name) => {
    const template = templates.get(name);
    if (template === undefined) throw new Error(`${name} did not load`);
    const { passJson } = await verifyPkpass(buildSignedBundle(content(template), identity), pki.wwdrPem);
    expect(passJson).toMatchObject({
      backgroundColor: 'rgb(255, 255, 255)',
      foregroundColor: 'rgb(0, 0, 0)',
      labelColor: 'rgb(255, 0, 0)',
      semantics: { seats: [expect.objectContaining({ seatSectionColor: 'rgb(255, 215, 0)' })] },
    });
  });

  it('examplePass signs, with its localized images, once an override names the app to launch', async () => {
    const template = templates.get('examplePass');
    if (template === undefined) throw new Error('examplePass did not load');
    const bundle = buildSignedBundle(
      content(template, { associatedStoreIdentifiers: [123456789] }),
      identity,
    );
    const { passJson, files } = await verifyPkpass(bundle, pki.wwdrPem);
    expect(passJson).toMatchObject({
      appLaunchURL: 'myapp://product?id=123',
      associatedStoreIdentifiers: [123456789],
      serialNumber: 'CORPUS-1',
      webServiceURL: 'https://passes.example.com',
    });
    expect([...files.keys()]).toEqual(
      expect.arrayContaining(['de.lproj/thumbnail.png', 'it.lproj/icon@2x.png']),
    );
  });
});
