import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PKPass } from 'passkit-generator';
import { describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors.js';
import { assertSignable, checkPassJson } from '../../src/passes/pass-json-rules.js';
import { projectRoot } from '../../src/paths.js';

/*
 * The pass.json rules on their own; how the admin API, the bundle builder and `validate` apply them is tested
 * with each (test/signing/bundle.test.ts, test/cli/validate.test.ts). passkit-generator is the real library.
 */

type Json = Record<string, unknown>;

/** An example template's pass.json with the keys the server sets. */
async function modelPassJson(name: string): Promise<Json> {
  const passJson = JSON.parse(
    await readFile(join(projectRoot, 'models', `${name}.pass`, 'pass.json'), 'utf8'),
  ) as Json;
  return {
    ...passJson,
    formatVersion: 1,
    passTypeIdentifier: 'pass.com.example.rules',
    teamIdentifier: 'TEAMID0001',
    serialNumber: 'RULES-1',
    authenticationToken: 'rules-token-0123456789',
    webServiceURL: 'https://passes.example.com',
  };
}

/** What passkit-generator keeps of a pass.json: its props after reading it. */
function keptBy(passJson: Json): Json {
  return { ...new PKPass({ 'pass.json': Buffer.from(JSON.stringify(passJson)) }).props };
}

function refusal(passJson: Json, style: string): string {
  try {
    assertSignable(passJson, keptBy(passJson), style);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidError);
    return (error as Error).message;
  }
  throw new Error('expected an InvalidError');
}

describe('the pass.json rules', () => {
  it.each([
    ['boarding', 'boardingPass'],
    ['coupon', 'coupon'],
    ['event', 'eventTicket'],
    ['loyalty', 'storeCard'],
    ['membership', 'generic'],
  ])('hold for the %s example, and it can be signed', async (name, style) => {
    const passJson = await modelPassJson(name);
    expect(checkPassJson(passJson).filter((finding) => finding.status !== 'pass')).toEqual([]);
    expect(() => assertSignable(passJson, keptBy(passJson), style)).not.toThrow();
  });

  it('refuse a value that passkit-generator would change, naming it', async () => {
    const passJson = { ...(await modelPassJson('loyalty')), formatVersion: '1' };
    expect(refusal(passJson, 'storeCard')).toMatch(
      /^pass\.json formatVersion: the signer .* change this value to 1/,
    );
  });

  it('refuse what Apple forbids and passkit-generator keeps: a date field without a time zone', async () => {
    const passJson = await modelPassJson('loyalty');
    const memberSince = (passJson.storeCard as Record<string, Json[]>).auxiliaryFields?.[0] ?? {};
    memberSince.value = '2025-01-01T00:00:00';
    expect(refusal(passJson, 'storeCard')).toMatch(
      /^pass\.json storeCard\.auxiliaryFields\[0\]\.value is "2025-01-01T00:00:00"; it needs a W3C date-time/,
    );
  });

  it('let the server sign an http webServiceURL, which validate only warns about on localhost', async () => {
    const passJson = { ...(await modelPassJson('loyalty')), webServiceURL: 'http://localhost:3000' };
    expect(() => assertSignable(passJson, keptBy(passJson), 'storeCard')).not.toThrow();
    const https = checkPassJson(passJson).filter(
      (finding) => finding.rule === 'pass.json/webServiceURL-https',
    );
    expect(https.map((finding) => finding.status)).toEqual(['warn']);
  });
});
