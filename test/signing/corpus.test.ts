import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors.js';
import { loadTemplates, type Template } from '../../src/passes/templates.js';
import { projectRoot } from '../../src/paths.js';
import { buildSignedBundle, checkWalletAcceptsTemplate, type PassContent } from '../../src/signing/bundle.js';
import type { SigningIdentity } from '../../src/signing/identity.js';
import { createTestPki, identityFromPki, type TestPki } from '../support/pki.js';
import { verifyPkpass } from '../support/pkpass-verifier.js';

/*
 * passkit-generator's own example models (MIT, shared read-only corpus, not copied into the project) used as
 * templates. Each either signs into a bundle Wallet accepts or is refused with an InvalidError naming what Wallet,
 * or the signer, would reject. What each one does, and why, is stated below.
 */
const corpusDir = join(projectRoot, '..', 'shared', 'corpus', 'passkit-generator-models');

const HEX_COLORS = /pass\.json\.backgroundColor: must be a CSS-style RGB triple/;

const expected: Record<string, { refused: RegExp; why: string }> = {
  exampleBooking: {
    refused: /pass\.json boardingPass\.transitType is missing/,
    why: 'boardingPass is {}: Wallet requires a transitType on boarding passes',
  },
  examplePass: {
    refused: /appLaunchURL needs associatedStoreIdentifiers/,
    why: 'appLaunchURL without associatedStoreIdentifiers: Apple requires both (an override supplying them fixes it, below)',
  },
  glowTime: {
    refused: HEX_COLORS,
    why: 'colors are hex (#1595d7); Apple specifies CSS rgb() triples',
  },
  posterEventTicketWithAdmissionLevel: {
    refused:
      /pass\.json semantics\.updatedEventStartDate: the signer \(passkit-generator\) would drop this value/,
    why: 'passkit-generator 3.6.1 does not know this iOS 18 semantic key and would silently sign a pass without it',
  },
  posterEventTicketWithNewSeats: { refused: HEX_COLORS, why: 'colors are hex (#ffffff)' },
  posterEventTicketWithUpcomingEvents: { refused: HEX_COLORS, why: 'colors are hex (#ffffff)' },
  semanticBoardingPass: {
    refused: /pass\.json boardingPass\.transitType is missing/,
    why: 'boardingPass is {}: Wallet requires a transitType on boarding passes',
  },
};

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
  return {
    template,
    serialNumber: 'CORPUS-1',
    authenticationToken: 'corpus-token-0123456789',
    webServiceURL: 'https://passes.example.com',
    fields: {},
    overrides,
    changeMessages: {},
    strings: {},
    images: {},
  };
}

// Outside this repository (beside it, as in CI); .ci/run fails when it is missing, so CI never skips these.
describe.skipIf(!existsSync(corpusDir))('the passkit-generator corpus', () => {
  it('has an expectation for every model', async () => {
    const models = (await readdir(corpusDir))
      .filter((name) => name.endsWith('.pass'))
      .map((name) => name.slice(0, -5));
    expect(models.sort()).toEqual(Object.keys(expected).sort());
    expect([...templates.keys()].sort()).toEqual(models.sort());
  });

  const cases = Object.entries(expected).map(([name, { refused, why }]) => [name, why, refused] as const);
  it.each(cases)('%s is refused: %s', async (name, _why, refused) => {
    const template = templates.get(name);
    if (template === undefined) throw new Error(`${name} did not load`);
    expect(() => checkWalletAcceptsTemplate(template, identity)).toThrow(InvalidError);
    expect(() => checkWalletAcceptsTemplate(template, identity)).toThrow(refused);
    // Signing refuses for the same reason, never with a different pass or a 500.
    expect(() => buildSignedBundle(content(template), identity)).toThrow(refused);
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
