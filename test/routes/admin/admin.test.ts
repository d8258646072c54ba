import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../../src/paths.js';
import { verifyPkpass } from '../../support/pkpass-verifier.js';
import { adminToken, startTestServer, type TestServer } from '../../support/server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

describe('admin API', () => {
  it('lists the templates with their styles and field keys', async () => {
    const { status, body } = await server.admin('GET', '/admin/templates');
    expect(status).toBe(200);
    const templates = body.templates as Array<{ name: string; style: string; fieldKeys: string[] }>;
    expect(templates.map((template) => template.style).sort()).toEqual(
      ['boardingPass', 'coupon', 'eventTicket', 'generic', 'storeCard'].sort(),
    );
    expect(templates.find((template) => template.name === 'loyalty')?.fieldKeys).toContain('points');
    // models/ are written for Wallet as they are: each is usable, and reading them converted nothing.
    for (const template of templates) {
      expect(template).toMatchObject({ usable: true, problem: null, conversions: [] });
    }
  });

  it('lists the signing identity with its expiry, and never its key', async () => {
    const response = await fetch(`${server.baseUrl}/admin/identities`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    const { notAfter } = server.identity;
    expect(JSON.parse(text)).toEqual({
      identities: [
        {
          passTypeIdentifier: server.identity.passTypeIdentifier,
          teamIdentifier: server.identity.teamIdentifier,
          isDevelopment: server.identity.isDevelopment,
          notAfter: notAfter.toISOString(),
          daysLeft: Math.floor((notAfter.getTime() - Date.now()) / 86_400_000),
          expired: false,
          source: 'configuration',
          certificateSha256: new X509Certificate(server.identity.signerCert).fingerprint256
            .replaceAll(':', '')
            .toLowerCase(),
          apns: { auth: 'configured' },
        },
      ],
    });
    expect(text).not.toMatch(/PRIVATE KEY|BEGIN/);
  });

  it('creates a pass with a generated serial, shows it, merges changes and serves its bundle', async () => {
    const created = await server.admin('POST', '/admin/passes', {
      template: 'loyalty',
      fields: { points: 10, member: 'Ada' },
      pass: { backgroundColor: 'rgb(10, 20, 30)' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      passTypeIdentifier: server.identity.passTypeIdentifier,
      template: 'loyalty',
      version: 1,
      registeredDevices: 0,
    });
    expect(String(created.body.serialNumber)).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.stringify(created.body)).not.toContain('authenticationToken');
    const path = `/admin/passes/${created.body.passTypeIdentifier}/${created.body.serialNumber}`;

    const changed = await server.admin('PATCH', path, { fields: { points: 11 } });
    expect(changed.body).toMatchObject({ version: 2, fields: { points: 11, member: 'Ada' } });
    expect((await server.admin('PATCH', path, { changeMessages: { points: 'no placeholder' } })).status).toBe(
      400,
    );

    const response = await fetch(`${server.baseUrl}${path}/pkpass`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const verified = await verifyPkpass(Buffer.from(await response.arrayBuffer()), server.pki.wwdrPem);
    expect(verified.passJson.backgroundColor).toBe('rgb(10, 20, 30)');
    expect(JSON.stringify(verified.passJson)).toContain('"value":11');
  });

  it('takes change messages on create, checked like PATCH takes them, and signs them into the bundle', async () => {
    const created = await server.admin('POST', '/admin/passes', {
      template: 'loyalty',
      fields: { points: 10 },
      changeMessages: { points: 'You now have %@ points' },
    });
    expect(created.status).toBe(201);
    expect(created.body.changeMessages).toEqual({ points: 'You now have %@ points' });
    const path = `/admin/passes/${created.body.passTypeIdentifier}/${created.body.serialNumber}`;
    const response = await fetch(`${server.baseUrl}${path}/pkpass`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const verified = await verifyPkpass(Buffer.from(await response.arrayBuffer()), server.pki.wwdrPem);
    const fields = Object.values(verified.passJson.storeCard as Record<string, unknown>).flat();
    expect(fields).toContainEqual(
      expect.objectContaining({ key: 'points', value: 10, changeMessage: 'You now have %@ points' }),
    );

    const unknownKey = await server.admin('POST', '/admin/passes', {
      template: 'loyalty',
      changeMessages: { nosuchfield: 'Now %@' },
    });
    expect(unknownKey.status).toBe(400);
    expect(String(unknownKey.body.message)).toContain('nosuchfield');
    const noPlaceholder = await server.admin('POST', '/admin/passes', {
      template: 'loyalty',
      changeMessages: { points: 'no placeholder' },
    });
    expect(noPlaceholder.status).toBe(400);
    expect(String(noPlaceholder.body.message)).toContain('%@');
  });

  it("stores a pass's own strings on create, merges PATCH's per language key by key and signs them as pass.strings", async () => {
    const created = await server.admin('POST', '/admin/passes', {
      template: 'loyalty',
      strings: { de: { Points: 'Punkte', Member: 'Mitglied' } },
    });
    expect(created.status).toBe(201);
    const path = `/admin/passes/${created.body.passTypeIdentifier}/${created.body.serialNumber}`;
    const changed = await server.admin('PATCH', path, {
      strings: { de: { Member: 'Mitglied "Gold"' }, fr: { Points: 'Points' } },
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({
      version: 2,
      strings: { de: { Points: 'Punkte', Member: 'Mitglied "Gold"' }, fr: { Points: 'Points' } },
    });
    expect((await server.admin('GET', path)).body.strings).toEqual(changed.body.strings);

    const response = await fetch(`${server.baseUrl}${path}/pkpass`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const { files } = await verifyPkpass(Buffer.from(await response.arrayBuffer()), server.pki.wwdrPem);
    // One pair per line; in the order jsonb keeps the keys, which is not the order they were sent in.
    expect(files.get('de.lproj/pass.strings')?.toString().split('\n').sort()).toEqual([
      '',
      '"Member" = "Mitglied \\"Gold\\"";',
      '"Points" = "Punkte";',
    ]);
    expect(files.get('fr.lproj/pass.strings')?.toString()).toBe('"Points" = "Points";\n');

    const badLanguage = await server.admin('PATCH', path, { strings: { '../x': { a: 'b' } } });
    expect(badLanguage.status).toBe(400);
    expect(String(badLanguage.body.message)).toContain('a language is a code');
  });

  it('pages through passes of a template with an opaque cursor', async () => {
    const serials = [];
    for (let i = 0; i < 5; i++) {
      serials.push((await server.admin('POST', '/admin/passes', { template: 'boarding' })).body.serialNumber);
    }
    const seen: unknown[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `/admin/passes?template=boarding&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await server.admin('GET', query);
      expect(page.status).toBe(200);
      const passes = page.body.passes as Array<{ serialNumber: string; template: string }>;
      expect(passes.length).toBeLessThanOrEqual(2);
      for (const pass of passes) {
        expect(pass.template).toBe('boarding');
        seen.push(pass.serialNumber);
      }
      cursor = page.body.nextCursor as string | null;
    } while (cursor);
    expect(seen).toEqual(serials);
  });

  it('refuses a cursor it never returned with 400, up to and past the largest pass id', async () => {
    const cursorOf = (text: string) => Buffer.from(text).toString('base64url');
    for (const text of ['9223372036854775808', '9999999999999999999', '-1', 'x', '1'.repeat(20)]) {
      const page = await server.admin('GET', `/admin/passes?cursor=${cursorOf(text)}`);
      expect(page.status, text).toBe(400);
      expect(page.body.message, text).toMatch(/cursor/);
    }
    expect(
      (await server.admin('GET', `/admin/passes?cursor=${cursorOf('9223372036854775807')}`)).status,
    ).toBe(200);
  });

  it('deletes a pass: 204, then 404 for admin and 401 for Wallet', async () => {
    const created = await server.admin('POST', '/admin/passes', {
      template: 'coupon',
      serialNumber: 'to-delete',
    });
    const path = `/admin/passes/${created.body.passTypeIdentifier}/to-delete`;
    expect((await server.admin('DELETE', path)).status).toBe(204);
    expect((await server.admin('GET', path)).status).toBe(404);
    expect((await server.admin('DELETE', path)).status).toBe(404);
    const wallet = await fetch(`${server.baseUrl}/v1/passes/${created.body.passTypeIdentifier}/to-delete`, {
      headers: { authorization: 'ApplePass whatever-whatever-whatever' },
    });
    expect(wallet.status).toBe(401);
  });
});

const corpusDir = join(projectRoot, '..', 'shared', 'corpus', 'passkit-generator-models');

// Outside this repository (beside it, as in CI); .ci/run fails when it is missing, so CI never skips this.
describe.skipIf(!existsSync(corpusDir))('templates written by others (the passkit-generator corpus)', () => {
  let corpus: TestServer;
  beforeAll(async () => {
    corpus = await startTestServer({ modelsDir: corpusDir });
  });
  afterAll(async () => {
    await corpus?.close();
  });

  it('each becomes a signed pass Wallet accepts, or a 400 naming what Wallet would reject', async () => {
    const names = (await corpus.templates.list()).map((entry) => entry.template.name);
    expect(names).toHaveLength(7);
    for (const name of names) {
      const { status, body } = await corpus.admin('POST', '/admin/passes', { template: name });
      if (status === 201) {
        const bundle = await (await fetch(String(body.downloadUrl))).arrayBuffer();
        await verifyPkpass(Buffer.from(bundle), corpus.pki.wwdrPem);
      } else {
        expect(status, name).toBe(400);
        expect(String(body.message), name).toMatch(/\w+/);
      }
    }
    // examplePass is refused only for appLaunchURL without associatedStoreIdentifiers: supplying it makes it valid.
    const fixed = await corpus.admin('POST', '/admin/passes', {
      template: 'examplePass',
      pass: { associatedStoreIdentifiers: [375380948] },
    });
    expect(fixed.status).toBe(201);
    await verifyPkpass(
      Buffer.from(await (await fetch(String(fixed.body.downloadUrl))).arrayBuffer()),
      corpus.pki.wwdrPem,
    );
  });
});
