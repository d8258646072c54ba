import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors.js';
import { loadTemplates, type Template } from '../../src/passes/templates.js';
import { projectRoot } from '../../src/paths.js';
import {
  bareContent,
  buildPassJson,
  buildSignedBundle,
  checkWalletAcceptsTemplate,
  type PassContent,
} from '../../src/signing/bundle.js';
import type { SigningIdentity } from '../../src/signing/identity.js';
import { createTestPki, identityFromPki, type TestPki } from '../support/pki.js';
import { verifyPkpass } from '../support/pkpass-verifier.js';

let pki: TestPki;
let identity: SigningIdentity;
let templates: Map<string, Template>;

beforeAll(async () => {
  pki = await createTestPki();
  identity = identityFromPki(pki);
  ({ templates } = await loadTemplates(join(projectRoot, 'models')));
});

afterAll(async () => {
  await rm(pki.dir, { recursive: true, force: true });
});

function template(name: string): Template {
  const found = templates.get(name);
  if (found === undefined) throw new Error(`no template ${name}`);
  return found;
}

function content(name: string, extra: Partial<PassContent> = {}): PassContent {
  return {
    ...bareContent(template(name), {
      serialNumber: 'SERIAL-0001',
      authenticationToken: 'a-token-of-at-least-16-chars',
      webServiceURL: 'http://localhost:3000',
    }),
    ...extra,
  };
}

type Json = Record<string, unknown>;
const styleOf = (passJson: Json, style: string) => passJson[style] as Record<string, Json[]>;
const field = (passJson: Json, style: string, key: string): Json | undefined =>
  Object.values(styleOf(passJson, style))
    .filter(Array.isArray)
    .flat()
    .find((candidate) => candidate.key === key);

/** The error a call throws, so a test can check both its class and that its message names the culprit. */
function thrown(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('buildPassJson', () => {
  it('sets field values keeping their JSON type, and change messages', () => {
    const passJson = buildPassJson(
      content('loyalty', {
        fields: { points: 1250, member: 'Ada Lovelace', tier: 'Gold', memberSince: '2024-03-01T00:00:00Z' },
        changeMessages: { points: 'Balance: %@', tier: 'You are now %@' },
      }),
      identity,
    );
    expect(field(passJson, 'storeCard', 'points')).toMatchObject({
      value: 1250,
      changeMessage: 'Balance: %@',
    });
    expect(field(passJson, 'storeCard', 'member')?.value).toBe('Ada Lovelace');
    expect(field(passJson, 'storeCard', 'tier')).toMatchObject({
      value: 'Gold',
      changeMessage: 'You are now %@',
    });
    expect(field(passJson, 'storeCard', 'memberSince')?.value).toBe('2024-03-01T00:00:00Z');
    // A numeric string stays a string: only the JSON type decides.
    const asText = buildPassJson(content('event', { fields: { seat: '12' } }), identity);
    expect(field(asText, 'eventTicket', 'seat')?.value).toBe('12');
  });

  it('forces the identity keys whatever the template says', () => {
    expect(template('loyalty').passJson).toMatchObject({
      serialNumber: 'set-by-the-server',
      passTypeIdentifier: 'pass.com.example.placeholder',
    });
    const passJson = buildPassJson(content('loyalty'), identity);
    expect(passJson).toMatchObject({
      formatVersion: 1,
      serialNumber: 'SERIAL-0001',
      authenticationToken: 'a-token-of-at-least-16-chars',
      webServiceURL: 'http://localhost:3000',
      passTypeIdentifier: pki.passTypeIdentifier,
      teamIdentifier: pki.teamIdentifier,
    });
  });

  it('merges overrides at the top level and leaves the template untouched', () => {
    const before = structuredClone(template('event').passJson);
    const passJson = buildPassJson(
      content('event', {
        fields: { event: 'Changed' },
        overrides: {
          backgroundColor: 'rgb(0, 0, 0)',
          relevantDates: [{ date: '2026-06-20T18:00:00+02:00' }],
          barcodes: [{ format: 'PKBarcodeFormatQR', message: 'T-42' }],
          voided: true,
        },
      }),
      identity,
    );
    expect(passJson).toMatchObject({
      backgroundColor: 'rgb(0, 0, 0)',
      voided: true,
      // Apple renamed relevantDate to date in iOS 26: both spellings are written.
      relevantDates: [{ date: '2026-06-20T18:00:00+02:00', relevantDate: '2026-06-20T18:00:00+02:00' }],
      // Apple requires messageEncoding; iso-8859-1 is filled in.
      barcodes: [{ format: 'PKBarcodeFormatQR', message: 'T-42', messageEncoding: 'iso-8859-1' }],
    });
    expect(template('event').passJson).toEqual(before);
  });

  it('refuses an unknown field key, naming it and the template keys', () => {
    for (const extra of [{ fields: { balance: 3 } }, { changeMessages: { balance: 'Now %@' } }]) {
      const error = thrown(() => buildPassJson(content('loyalty', extra), identity));
      expect(error).toBeInstanceOf(InvalidError);
      expect(error.message).toMatch(
        /unknown field key "balance" for template "loyalty"; its field keys are .*points/,
      );
    }
  });

  it.each([
    [
      'a bad color',
      { backgroundColor: '#ff0000' },
      /overrides\.backgroundColor: must be a CSS-style RGB triple/,
    ],
    ['a color channel above 255', { labelColor: 'rgb(256, 0, 0)' }, /overrides\.labelColor/],
    [
      'a date without time zone',
      { expirationDate: '2026-01-01T10:00:00' },
      /overrides\.expirationDate: .*time zone/,
    ],
    ['a date without time', { relevantDate: '2026-01-01' }, /overrides\.relevantDate/],
    [
      'an unknown key',
      { stripColor: 'rgb(1, 2, 3)' },
      /unknown key "stripColor"; allowed keys are .*barcodes/,
    ],
    ['an identity key', { serialNumber: 'X' }, /overrides\.serialNumber: serialNumber is set by the server/],
    ['formatVersion', { formatVersion: 2 }, /overrides\.formatVersion: formatVersion is set by the server/],
    [
      'webServiceURL',
      { webServiceURL: 'https://evil.example' },
      /overrides\.webServiceURL: .*set by the server/,
    ],
    [
      'a bad barcode format',
      { barcodes: [{ format: 'QR', message: 'x' }] },
      /overrides\.barcodes\.0\.format/,
    ],
    [
      'a latitude out of range',
      { locations: [{ latitude: 91, longitude: 0 }] },
      /overrides\.locations\.0\.latitude/,
    ],
    [
      'appLaunchURL alone',
      { appLaunchURL: 'myapp://open' },
      /overrides\.appLaunchURL: .*associatedStoreIdentifiers/,
    ],
    ['a non-boolean voided', { voided: 'yes' }, /overrides\.voided/],
  ])('refuses %s in overrides with an InvalidError naming the key', (_, overrides, message) => {
    const error = thrown(() => buildPassJson(content('coupon', { overrides }), identity));
    expect(error).toBeInstanceOf(InvalidError);
    expect(error.message).toMatch(message);
  });

  it.each([
    [
      'a change message without %@',
      { changeMessages: { offer: 'New offer!' } },
      /changeMessages\.offer: must contain %@/,
    ],
    ['a string for a number field', { fields: { points: '1250' } }, /fields\.points: a number field/],
    [
      'a non-date for a date field',
      { fields: { memberSince: 'last year' } },
      /fields\.memberSince: a date field/,
    ],
    [
      'a date field value without time zone',
      { fields: { memberSince: '2024-03-01T00:00' } },
      /fields\.memberSince/,
    ],
    ['an object as value', { fields: { member: { first: 'Ada' } } }, /fields\.member/],
    [
      'a short authenticationToken',
      { authenticationToken: 'short' },
      /authenticationToken must be at least 16/,
    ],
    [
      'a webServiceURL that is no web URL',
      { webServiceURL: 'ftp://example.com' },
      /webServiceURL must be an http\(s\) URL/,
    ],
  ])('refuses %s', (_, extra, message) => {
    const template = 'changeMessages' in extra ? 'coupon' : 'loyalty';
    const error = thrown(() => buildPassJson(content(template, extra as Partial<PassContent>), identity));
    expect(error).toBeInstanceOf(InvalidError);
    expect(error.message).toMatch(message);
  });
});

describe('buildSignedBundle', () => {
  const samples: Record<string, Partial<PassContent>> = {
    loyalty: {
      fields: { points: 1250, member: 'Ada Lovelace', tier: 'Gold' },
      changeMessages: { points: 'Balance: %@' },
    },
    event: {
      fields: {
        event: 'Jazz Night',
        venue: 'Blue Hall',
        date: '2026-09-01T20:00:00+02:00',
        seat: '14',
        gate: 'C',
      },
      overrides: { relevantDate: '2026-09-01T18:00:00+02:00' },
    },
    coupon: {
      fields: { offer: '30% off', expires: '2026-10-31T23:59:00Z' },
      overrides: { expirationDate: '2026-11-01T00:00:00Z' },
    },
    boarding: {
      fields: {
        origin: 'LIS',
        destination: 'OSL',
        gate: 'D4',
        seat: '3C',
        boardingTime: '2026-05-02T07:40:00+01:00',
      },
      changeMessages: { gate: 'Gate changed to %@' },
    },
    membership: {
      fields: { member: 'Grace Hopper', memberId: '004217' },
      overrides: { locations: [{ latitude: 59.91, longitude: 10.75, relevantText: 'Welcome back!' }] },
    },
  };

  it.each(Object.keys(samples))('signs the %s template into a bundle Wallet accepts', async (name) => {
    const sample = samples[name] ?? {};
    const bundle = buildSignedBundle(content(name, sample), identity);
    const { passJson, files } = await verifyPkpass(bundle, pki.wwdrPem);
    const style = template(name).style;
    for (const [key, value] of Object.entries(sample.fields ?? {})) {
      expect(field(passJson, style, key)?.value, key).toBe(value);
    }
    for (const [key, message] of Object.entries(sample.changeMessages ?? {})) {
      expect(field(passJson, style, key)?.changeMessage).toBe(message);
    }
    expect(passJson).toMatchObject({
      serialNumber: 'SERIAL-0001',
      passTypeIdentifier: pki.passTypeIdentifier,
      teamIdentifier: pki.teamIdentifier,
      // http://localhost is what a development server passes; the signer must not drop it.
      webServiceURL: 'http://localhost:3000',
      authenticationToken: 'a-token-of-at-least-16-chars',
    });
    for (const file of Object.keys(template(name).files)) expect(files.has(file), file).toBe(true);
  });

  it('keeps a number a number in the signed pass.json', async () => {
    const bundle = buildSignedBundle(content('loyalty', { fields: { points: 42.5 } }), identity);
    const { passJson } = await verifyPkpass(bundle, pki.wwdrPem);
    expect(field(passJson, 'storeCard', 'points')?.value).toBe(42.5);
  });

  it('writes override dates as the same instant', async () => {
    const bundle = buildSignedBundle(
      content('event', { overrides: { relevantDate: '2026-09-01T18:00:00+02:00' } }),
      identity,
    );
    const { passJson } = await verifyPkpass(bundle, pki.wwdrPem);
    expect(Date.parse(String(passJson.relevantDate))).toBe(Date.parse('2026-09-01T18:00:00+02:00'));
  });

  it('lower-cases the webServiceURL host, which the signer would otherwise refuse', async () => {
    const bundle = buildSignedBundle(
      content('loyalty', { webServiceURL: 'https://Passes.Example.com/PassKit' }),
      identity,
    );
    const { passJson } = await verifyPkpass(bundle, pki.wwdrPem);
    expect(passJson.webServiceURL).toBe('https://passes.example.com/PassKit');
  });

  it('refuses an invalid override before signing', async () => {
    const error = thrown(() =>
      buildSignedBundle(content('loyalty', { overrides: { foregroundColor: 'white' } }), identity),
    );
    expect(error).toBeInstanceOf(InvalidError);
    expect(error.message).toMatch(/overrides\.foregroundColor/);
  });
});

describe('checkWalletAcceptsTemplate', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bundle-test-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A copy of an example template with its pass.json changed. */
  async function variant(from: string, change: (passJson: Json) => void): Promise<Template> {
    const target = join(dir, `${from}-${Math.random().toString(36).slice(2)}.pass`);
    await cp(join(projectRoot, 'models', `${from}.pass`), target, { recursive: true });
    const passJson = JSON.parse(await readFile(join(target, 'pass.json'), 'utf8')) as Json;
    change(passJson);
    await writeFile(join(target, 'pass.json'), JSON.stringify(passJson));
    const { templates: loaded } = await loadTemplates(dir);
    const name = target.slice(dir.length + 1, -'.pass'.length);
    const loadedTemplate = loaded.get(name);
    if (loadedTemplate === undefined) throw new Error(`variant ${name} did not load`);
    return loadedTemplate;
  }

  it('accepts the five example templates', () => {
    for (const each of templates.values())
      expect(() => checkWalletAcceptsTemplate(each, identity)).not.toThrow();
  });

  it.each<[string, string, (passJson: Json) => void, RegExp]>([
    [
      'a boarding pass without transitType',
      'boarding',
      (passJson) => {
        delete (passJson.boardingPass as Json).transitType;
      },
      /boardingPass\.transitType is missing/,
    ],
    [
      // (a hex colour is converted when the template is read: src/passes/model-conversion.ts)
      'a color by name',
      'loyalty',
      (passJson) => Object.assign(passJson, { labelColor: 'white' }),
      /pass\.json\.labelColor/,
    ],
    [
      'a key the signer would drop',
      'coupon',
      (passJson) => Object.assign(passJson, { passLastModDate: '2026-01-01' }),
      /pass\.json passLastModDate: the signer \(passkit-generator\) would drop this value/,
    ],
    [
      'a value that makes the signer refuse the whole pass.json',
      'event',
      (passJson) => Object.assign(passJson, { preferredStyleSchemes: ['fancyTicket'] }),
      /pass\.json preferredStyleSchemes: refused by the signer/,
    ],
    [
      'no organizationName',
      'event',
      (passJson) => delete passJson.organizationName,
      /organizationName is required/,
    ],
    [
      'a changeMessage without %@',
      'membership',
      (passJson) =>
        Object.assign((passJson.generic as Record<string, Json[]>).primaryFields?.[0] ?? {}, {
          changeMessage: 'x',
        }),
      /generic\.primaryFields\[0\] \(key "member"\): changeMessage must contain %@/,
    ],
  ])('refuses %s, naming it', async (_, from, change, message) => {
    const broken = await variant(from, change);
    const error = thrown(() => checkWalletAcceptsTemplate(broken, identity));
    expect(error).toBeInstanceOf(InvalidError);
    expect(error.message).toMatch(message);
  });
});
