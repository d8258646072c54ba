import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBulkRunner } from '../../../src/passes/bulk.js';
import { getSignedBundle, updatePass } from '../../../src/passes/passes.js';
import { projectRoot } from '../../../src/paths.js';
import { testTemplateCatalog } from '../../support/catalog.js';
import { verifyPkpass } from '../../support/pkpass-verifier.js';
import { adminToken, startTestServer, type TestServer } from '../../support/server.js';
import { readPassJson, WalletDevice } from '../../support/wallet-device.js';
import { passesDeps } from './bulk-fixtures.js';

/*
 * Templates uploaded through the admin API as zips of a .pass folder, made by Info-ZIP's `zip` (not by our zip
 * code): the seven models of another project (the shared corpus) each publish or are refused naming the key, an
 * override.json supplies what a model lacks, versions are kept per pass, and hostile zips are refused.
 */

const corpusDir = join(projectRoot, '..', 'shared', 'corpus', 'passkit-generator-models');
const modelsDir = join(projectRoot, 'models');

let server: TestServer;
let work: string;

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(join(tmpdir(), 'pks-template-uploads-'));
});
afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

/** `zip -r` of the given paths inside `cwd`. */
function zipOf(cwd: string, ...paths: string[]): Buffer {
  const out = join(work, `${Math.random().toString(36).slice(2)}.zip`);
  execFileSync('zip', ['-q', '-r', out, ...paths], { cwd });
  return readFileSync(out);
}

async function upload(name: string, zip: Buffer, contentType = 'application/zip') {
  const response = await fetch(`${server.baseUrl}/admin/templates/${name}/versions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': contentType },
    body: new Uint8Array(zip),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function bundleOf(body: Record<string, unknown>): Promise<Buffer> {
  return Buffer.from(await (await fetch(String(body.downloadUrl))).arrayBuffer());
}

describe.skipIf(!existsSync(corpusDir))('the corpus models, uploaded', () => {
  it('each publishes and makes passes Wallet accepts, or is refused naming the key; an override fixes the rest', async () => {
    const models = readdirSync(corpusDir).filter((name) => name.endsWith('.pass'));
    expect(models).toHaveLength(7);
    const refused: Record<string, string> = {};
    for (const folder of models) {
      const name = folder.slice(0, -'.pass'.length);
      const answer = await upload(name, zipOf(corpusDir, folder));
      if (answer.status === 201) {
        expect(answer.body).toMatchObject({ name, version: 1, versions: [1], source: 'api', usable: true });
        const created = await server.admin('POST', '/admin/passes', { template: name });
        expect(created.status, name).toBe(201);
        expect(created.body.templateVersion).toBe(1);
        await verifyPkpass(await bundleOf(created.body), server.pki.wwdrPem);
      } else {
        expect(answer.status, name).toBe(400);
        refused[name] = String(answer.body.message);
      }
    }
    expect(refused).toEqual({
      exampleBooking: expect.stringContaining('boardingPass.transitType is missing'),
      examplePass: expect.stringContaining('associatedStoreIdentifiers'),
      glowTime: expect.stringContaining(
        'pass.json passLastModDate: the signer (passkit-generator) would drop',
      ),
      posterEventTicketWithAdmissionLevel: expect.stringContaining('semantics.updatedEventStartDate'),
      semanticBoardingPass: expect.stringContaining('boardingPass.transitType is missing'),
    });

    // The override sits beside the .pass folder in the zip, as beside a MODELS_DIR folder.
    const fixes: Record<string, unknown> = {
      exampleBooking: { boardingPass: { transitType: 'PKTransitTypeAir' } },
      examplePass: { associatedStoreIdentifiers: [375380948] },
      // Keys the signer does not know (it would drop them): the override removes them.
      glowTime: { passLastModDate: null },
      posterEventTicketWithAdmissionLevel: {
        semantics: { updatedEventStartDate: null, updatedEventEndDate: null },
      },
      semanticBoardingPass: { boardingPass: { transitType: 'PKTransitTypeAir' } },
    };
    for (const [name, override] of Object.entries(fixes)) {
      const dir = await mkdtemp(join(work, 'override-'));
      await cp(join(corpusDir, `${name}.pass`), join(dir, `${name}.pass`), { recursive: true });
      await writeFile(join(dir, 'override.json'), JSON.stringify(override));
      const answer = await upload(name, zipOf(dir, `${name}.pass`, 'override.json'));
      expect(answer.status, `${name}: ${String(answer.body.message)}`).toBe(201);
      expect(answer.body.conversions).toEqual(
        expect.arrayContaining([expect.stringMatching(/by the override$/)]),
      );
      const created = await server.admin('POST', '/admin/passes', { template: name });
      expect(created.status, name).toBe(201);
      await verifyPkpass(await bundleOf(created.body), server.pki.wwdrPem);
    }
  });
});

describe('template versions', () => {
  it('new passes use the latest version; a pass keeps its own, also when it changes', async () => {
    const dir = await mkdtemp(join(work, 'versions-'));
    await cp(join(modelsDir, 'loyalty.pass'), join(dir, 'member.pass'), { recursive: true });
    // The model's files at the zip's root this time, not in a folder.
    const first = await upload('member', zipOf(join(dir, 'member.pass'), '.'));
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      name: 'member',
      version: 1,
      source: 'api',
      images: expect.arrayContaining(['icon.png']),
    });
    const old = await server.admin('POST', '/admin/passes', { template: 'member', fields: { points: 1 } });
    expect(old.body.templateVersion).toBe(1);

    const passJsonPath = join(dir, 'member.pass', 'pass.json');
    const passJson = JSON.parse(await readFile(passJsonPath, 'utf8')) as Record<string, unknown>;
    await writeFile(passJsonPath, JSON.stringify({ ...passJson, organizationName: 'Member Club v2' }));
    const second = await upload('member', zipOf(dir, 'member.pass'));
    expect(second.body).toMatchObject({ version: 2, versions: [1, 2] });

    const fresh = await server.admin('POST', '/admin/passes', { template: 'member', fields: { points: 2 } });
    expect(fresh.body.templateVersion).toBe(2);
    expect(readPassJson(await bundleOf(fresh.body)).organizationName).toBe('Member Club v2');
    const path = `/admin/passes/${old.body.passTypeIdentifier}/${old.body.serialNumber}`;
    const changed = await server.admin('PATCH', path, { fields: { points: 5 } });
    expect(changed.body).toMatchObject({ templateVersion: 1, version: 2 });
    expect(readPassJson(await bundleOf(changed.body)).organizationName).toBe(passJson.organizationName);

    const listed = await server.admin('GET', '/admin/templates/member');
    expect(listed.body).toMatchObject({ version: 2, versions: [1, 2] });
    const inUse = await server.admin('DELETE', '/admin/templates/member/versions/1');
    expect(inUse.status).toBe(409);
    expect((await server.admin('DELETE', path)).status).toBe(204);
    expect((await server.admin('DELETE', '/admin/templates/member/versions/1')).status).toBe(204);
    expect((await server.admin('DELETE', '/admin/templates/member/versions/1')).status).toBe(404);
    expect((await server.admin('GET', '/admin/templates/member')).body).toMatchObject({ versions: [2] });
    // The whole template: refused while a pass is made from a version of it, then gone.
    expect((await server.admin('DELETE', '/admin/templates/member')).status).toBe(409);
    const freshPath = `/admin/passes/${fresh.body.passTypeIdentifier}/${fresh.body.serialNumber}`;
    expect((await server.admin('DELETE', freshPath)).status).toBe(204);
    expect((await server.admin('DELETE', '/admin/templates/member')).status).toBe(204);
    expect((await server.admin('GET', '/admin/templates/member')).status).toBe(404);
    expect((await server.admin('DELETE', '/admin/templates/member')).status).toBe(404);
    expect((await server.admin('DELETE', '/admin/templates/loyalty')).status).toBe(409);
    expect((await server.admin('DELETE', '/admin/templates/loyalty/versions/1')).status).toBe(409);
  });

  it('after a restart, reads a version it has not read yet inside the change that needs it (PGlite has one connection)', async () => {
    const dir = await mkdtemp(join(work, 'restart-'));
    await cp(join(modelsDir, 'coupon.pass'), join(dir, 'deal.pass'), { recursive: true });
    expect((await upload('deal', zipOf(dir, 'deal.pass'))).status).toBe(201);
    const created = await server.admin('POST', '/admin/passes', {
      template: 'deal',
      fields: { offer: '10%' },
    });
    const key = {
      passTypeIdentifier: String(created.body.passTypeIdentifier),
      serialNumber: String(created.body.serialNumber),
    };
    // A new catalog on the same database is what an instance has after a restart: no version read yet.
    const restarted = {
      ...passesDeps(server),
      templates: testTemplateCatalog(new Map(), server.database.repositories, server.identities),
    };
    // Asked for a version before it exists (published meanwhile elsewhere), it still finds it once it does.
    expect(await restarted.templates.find('deal', 2)).toBeUndefined();
    expect((await upload('deal', zipOf(dir, 'deal.pass'))).body.version).toBe(2);
    expect((await restarted.templates.find('deal', 2))?.version).toBe(2);
    const changed = await updatePass(restarted, key, { fields: { offer: '20%' } });
    expect(changed).toMatchObject({ templateVersion: 1, version: 2, fields: { offer: '20%' } });
    const bundle = await getSignedBundle(restarted, changed);
    await verifyPkpass(bundle, server.pki.wwdrPem);
  });

  it('moves every pass of a template to a new version: a dry run first, then a bulk job that re-signs them', async () => {
    const dir = await mkdtemp(join(work, 'move-'));
    await cp(join(modelsDir, 'event.pass'), join(dir, 'show.pass'), { recursive: true });
    expect((await upload('show', zipOf(dir, 'show.pass'))).status).toBe(201);
    const serials: string[] = [];
    for (const seat of ['1', '2', '3']) {
      const created = await server.admin('POST', '/admin/passes', { template: 'show', fields: { seat } });
      serials.push(String(created.body.serialNumber));
    }
    const device = new WalletDevice();
    const first = await server.admin(
      'GET',
      `/admin/passes/${server.identity.passTypeIdentifier}/${serials[0]}`,
    );
    expect((await device.add(await bundleOf(first.body))).status).toBe(201);

    const passJsonPath = join(dir, 'show.pass', 'pass.json');
    const passJson = JSON.parse(await readFile(passJsonPath, 'utf8')) as Record<string, unknown>;
    await writeFile(passJsonPath, JSON.stringify({ ...passJson, organizationName: 'Show v2' }));
    expect((await upload('show', zipOf(dir, 'show.pass'))).body.version).toBe(2);

    const move = { select: { template: 'show' }, change: { templateVersion: 2 } };
    const preview = await server.admin('POST', '/admin/passes/bulk/preview', move);
    expect(preview).toEqual({ status: 200, body: { passes: 3, devices: 1 } });
    const unknown = await server.admin('POST', '/admin/passes/bulk/preview', {
      ...move,
      change: { templateVersion: 9 },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.message).toContain('Unknown template "show" version 9');

    const runner = startBulkRunner({
      deps: passesDeps(server),
      log: pino({ level: 'silent' }),
      pollIntervalMs: 20,
    });
    try {
      const posted = await server.admin('POST', '/admin/passes/bulk', move);
      expect(posted.status).toBe(202);
      await expect
        .poll(async () => (await server.admin('GET', `/admin/bulk/${posted.body.jobId}`)).body.status, {
          timeout: 30_000,
        })
        .toBe('done');
      expect((await server.admin('GET', `/admin/bulk/${posted.body.jobId}`)).body).toMatchObject({
        done: 3,
        failed: 0,
      });
    } finally {
      await runner.stop();
    }
    for (const serialNumber of serials) {
      const moved = await server.admin(
        'GET',
        `/admin/passes/${server.identity.passTypeIdentifier}/${serialNumber}`,
      );
      expect(moved.body).toMatchObject({ templateVersion: 2, version: 2 });
      expect(readPassJson(await bundleOf(moved.body)).organizationName).toBe('Show v2');
    }
    // The device that holds one of them gets it at its new version.
    expect(await device.sync(server.baseUrl, server.identity.passTypeIdentifier)).toEqual([serials[0]]);
    expect((await server.admin('DELETE', '/admin/templates/show/versions/1')).status).toBe(204);

    const modelsPass = await server.admin('POST', '/admin/passes', { template: 'event' });
    const path = `/admin/passes/${modelsPass.body.passTypeIdentifier}/${modelsPass.body.serialNumber}`;
    const refused = await server.admin('PATCH', path, { templateVersion: 2 });
    expect(refused.status).toBe(400);
    expect(refused.body.message).toContain('MODELS_DIR template, which has no versions');
  });

  it('refuses what is not a usable template, naming the file', async () => {
    const dir = await mkdtemp(join(work, 'bad-'));
    await cp(join(modelsDir, 'coupon.pass'), join(dir, 'coupon.pass'), { recursive: true });
    const cases: Array<[string, Buffer, string]> = [];
    await mkdir(join(dir, 'coupon.pass', 'nested'));
    await cp(join(dir, 'coupon.pass', 'icon.png'), join(dir, 'coupon.pass', 'nested', 'icon.png'));
    cases.push([
      'nested',
      zipOf(dir, 'coupon.pass'),
      'coupon.pass/nested/icon.png: a template holds files at its root and in <lang>.lproj/ folders only',
    ]);
    await rm(join(dir, 'coupon.pass', 'nested'), { recursive: true });
    await rm(join(dir, 'coupon.pass', 'icon.png'));
    await rm(join(dir, 'coupon.pass', 'icon@2x.png'), { force: true });
    cases.push(['no-icon', zipOf(dir, 'coupon.pass'), 'icon.png is missing']);
    cases.push(['not-a-zip', Buffer.from('plain text'), 'not a zip archive']);
    // A path out of the folder ("zip slip"): Info-ZIP will not write one, Python's zipfile does as told.
    const slip = join(work, 'slip.zip');
    const write =
      'import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w") as z: z.writestr("../escape.txt", "x")';
    execFileSync('python3', ['-c', write, slip]);
    cases.push(['slip', await readFile(slip), "../escape.txt: a path out of the template's folder"]);
    for (const [name, zip, message] of cases) {
      const answer = await upload(name, zip);
      expect({ name, status: answer.status, message: answer.body.message }).toEqual({
        name,
        status: 400,
        message: expect.stringContaining(message),
      });
      expect((await server.admin('GET', `/admin/templates/${name}`)).status).toBe(404);
    }
    expect((await upload('loyalty', zipOf(modelsDir, 'loyalty.pass'))).status).toBe(409);
    expect((await upload('bad name', zipOf(modelsDir, 'loyalty.pass'))).status).toBe(400);
    expect((await upload('json', Buffer.from('{}'), 'application/json')).status).toBe(400);
  });

  it('refuses a zip whose files would inflate beyond the limits before inflating them', async () => {
    const dir = await mkdtemp(join(work, 'bomb-'));
    await cp(join(modelsDir, 'coupon.pass'), join(dir, 'coupon.pass'), { recursive: true });
    // 30 MB of zeros compress to a few kilobytes.
    execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'coupon.pass', 'strip.png')}`, 'bs=1M', 'count=30'], {
      stdio: 'ignore',
    });
    const zip = zipOf(dir, 'coupon.pass');
    expect(zip.length).toBeLessThan(1024 * 1024);
    const answer = await upload('bomb', zip);
    expect(answer.status).toBe(400);
    expect(String(answer.body.message)).toContain('The zip is too large');
  });
});
