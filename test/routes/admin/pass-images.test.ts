import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BulkRunner, startBulkRunner } from '../../../src/passes/bulk.js';
import { projectRoot } from '../../../src/paths.js';
import { verifyPkpass } from '../../support/pkpass-verifier.js';
import { adminToken, startTestServer, type TestServer } from '../../support/server.js';
import { WalletDevice } from '../../support/wallet-device.js';
import { passesDeps } from './bulk-fixtures.js';

/*
 * A pass's own images through the admin API: PNG bodies checked against Apple's images for the pass's style, a new
 * version that carries them in its signed bundle (checked by openssl), a push to the devices that hold the pass.
 */

let server: TestServer;
let runner: BulkRunner;

beforeAll(async () => {
  server = await startTestServer();
  runner = startBulkRunner({ deps: passesDeps(server), log: pino({ level: 'silent' }), pollIntervalMs: 20 });
});
afterAll(async () => {
  await runner?.stop();
  await server?.close();
});

/** A real PNG of this size, one colour, made by pngjs. */
function png(width: number, height: number, shade = 120): Buffer {
  const image = new PNG({ width, height });
  image.data.fill(shade);
  return PNG.sync.write(image);
}

function imageRequest(path: string, method: 'GET' | 'PUT' | 'DELETE', body?: Buffer, type = 'image/png') {
  return fetch(`${server.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body ? { 'content-type': type } : {}) },
    ...(body ? { body: new Uint8Array(body) } : {}),
  });
}

async function bundleOf(path: string) {
  const response = await fetch(`${server.baseUrl}${path}/pkpass`, {
    headers: { authorization: `Bearer ${adminToken}` },
  });
  return verifyPkpass(Buffer.from(await response.arrayBuffer()), server.pki.wwdrPem);
}

async function createLoyaltyPass(): Promise<string> {
  const created = await server.admin('POST', '/admin/passes', { template: 'loyalty', fields: { points: 1 } });
  expect(created.status).toBe(201);
  return `/admin/passes/${created.body.passTypeIdentifier}/${created.body.serialNumber}`;
}

/** The message of an error answer (every error is JSON: statusCode, error, message). */
async function messageOf(response: Response): Promise<string> {
  return ((await response.json()) as { message: string }).message;
}

async function outboxTokens(): Promise<string[]> {
  const rows = await server.database.prisma.pushOutbox.findMany({ select: { pushToken: true } });
  return rows.map((row) => row.pushToken);
}

describe("a pass's own images", () => {
  it('replaces the template image in a new version, pushes it, keeps it through PATCH, and drops it again', async () => {
    const path = await createLoyaltyPass();
    const device = new WalletDevice();
    const original = await bundleOf(path);
    expect((await device.add(await rawBundle(path))).status).toBe(201);

    const strip = png(750, 288);
    const put = await imageRequest(`${path}/images/strip@2x.png`, 'PUT', strip);
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ version: 2, images: ['strip@2x.png'] });
    expect(await outboxTokens()).toContain(device.pushToken);
    // A page of passes shows each one's images and devices too (one statement for the page).
    const page = await server.admin('GET', '/admin/passes?template=loyalty&limit=500');
    const listed = (page.body.passes as Array<{ serialNumber: string }>).find((pass) =>
      path.endsWith(`/${pass.serialNumber}`),
    );
    expect(listed).toMatchObject({ images: ['strip@2x.png'], registeredDevices: 1 });
    const downloaded = await imageRequest(`${path}/images/strip@2x.png`, 'GET');
    expect(downloaded.status).toBe(200);
    expect(downloaded.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await downloaded.arrayBuffer()).equals(strip)).toBe(true);
    // Only the pass's own images: the template's strip.png is not one.
    expect((await imageRequest(`${path}/images/strip.png`, 'GET')).status).toBe(404);
    const changed = await bundleOf(path);
    expect(changed.files.get('strip@2x.png')?.equals(strip)).toBe(true);
    expect(changed.files.get('strip.png')?.equals(original.files.get('strip.png') as Buffer)).toBe(true);

    const patched = await server.admin('PATCH', path, { fields: { points: 2 } });
    expect(patched.body).toMatchObject({ version: 3 });
    expect((await bundleOf(path)).files.get('strip@2x.png')?.equals(strip)).toBe(true);

    // A bulk change signs each pass with its own images too.
    const serialNumber = path.split('/').at(-1) as string;
    const job = await server.admin('POST', '/admin/passes/bulk', {
      select: { serialNumbers: [serialNumber] },
      change: { fields: { points: 3 } },
    });
    expect(job.status).toBe(202);
    await expect
      .poll(async () => (await server.admin('GET', `/admin/bulk/${job.body.jobId}`)).body.status)
      .toBe('done');
    expect((await server.admin('GET', path)).body).toMatchObject({ version: 4, fields: { points: 3 } });
    expect((await bundleOf(path)).files.get('strip@2x.png')?.equals(strip)).toBe(true);

    const dropped = await imageRequest(`${path}/images/strip@2x.png`, 'DELETE');
    expect(dropped.status).toBe(200);
    expect(await dropped.json()).toMatchObject({ version: 5, images: [] });
    const restored = await bundleOf(path);
    expect(restored.files.get('strip@2x.png')?.equals(original.files.get('strip@2x.png') as Buffer)).toBe(
      true,
    );

    const again = await imageRequest(`${path}/images/strip@2x.png`, 'DELETE');
    expect(again.status).toBe(404);
    expect(await messageOf(again)).toContain('strip@2x.png');
  });

  it("adds an image the template lacks, when the pass's style shows it", async () => {
    // The event template without its strip, uploaded (Info-ZIP): its tickets may show a background and a thumbnail.
    const folder = await mkdtemp(join(tmpdir(), 'pks-stripless-'));
    await cp(join(projectRoot, 'models', 'event.pass'), join(folder, 'event.pass'), { recursive: true });
    for (const name of await readdir(join(folder, 'event.pass'))) {
      if (name.startsWith('strip')) await rm(join(folder, 'event.pass', name));
    }
    const zip = execFileSync('zip', ['-q', '-r', '-', 'event.pass'], { cwd: folder });
    await server.templates.publish('stripless-event', zip);
    const created = await server.admin('POST', '/admin/passes', { template: 'stripless-event' });
    const path = `/admin/passes/${created.body.passTypeIdentifier}/${created.body.serialNumber}`;
    const photo = png(180, 180);
    expect((await imageRequest(`${path}/images/thumbnail@2x.png`, 'PUT', photo)).status).toBe(200);
    const { files, manifest } = await bundleOf(path);
    expect(files.get('thumbnail@2x.png')?.equals(photo)).toBe(true);
    expect(Object.keys(manifest)).toContain('thumbnail@2x.png');
    // A strip now would sit beside the thumbnail, which Apple rules out for event tickets.
    const strip = await imageRequest(`${path}/images/strip.png`, 'PUT', png(375, 98));
    expect(strip.status).toBe(400);
    expect(await messageOf(strip)).toContain(
      'an event ticket with a strip image must not have a thumbnail image',
    );
    await rm(folder, { recursive: true, force: true });
  });

  it('refuses a thumbnail for an event ticket whose template has a strip (Apple: one or the other)', async () => {
    const created = await server.admin('POST', '/admin/passes', { template: 'event' });
    const path = `/admin/passes/${created.body.passTypeIdentifier}/${created.body.serialNumber}`;
    const refused = await imageRequest(`${path}/images/thumbnail@2x.png`, 'PUT', png(180, 180));
    expect(refused.status).toBe(400);
    expect(await messageOf(refused)).toContain('must not have a thumbnail image');
  });

  it('refuses, with a message naming the problem, what Wallet would not show and what is no PNG', async () => {
    const path = await createLoyaltyPass();
    const cases: Array<[string, Buffer, string, number, RegExp]> = [
      ['thumbnail.png', png(90, 90), 'image/png', 400, /storeCard pass does not show a thumbnail/],
      [
        'strip.png',
        png(400, 144),
        'image/png',
        400,
        /400 × 144 px is larger than Apple's strip \(375 × 144 points/,
      ],
      ['strip@3x.png', png(1125, 433), 'image/png', 400, /1125 × 432 px at 3x/],
      ['logo.png', Buffer.from('GIF89a not a png at all'), 'image/png', 400, /not a PNG file/],
      ['photo.png', png(10, 10), 'image/png', 400, /an image is icon, logo, strip/],
      ['logo.png', png(10, 10), 'application/octet-stream', 415, /./],
      ['logo.png', Buffer.alloc(1024 * 1024 + 1), 'image/png', 413, /./],
    ];
    for (const [name, body, type, status, message] of cases) {
      const response = await imageRequest(`${path}/images/${name}`, 'PUT', body, type);
      expect(response.status, `${name} (${type})`).toBe(status);
      expect(await messageOf(response), name).toMatch(message);
    }
    // Nothing above made a version.
    expect((await server.admin('GET', path)).body).toMatchObject({ version: 1 });
    const missing = await imageRequest('/admin/passes/pass.nope/none/images/logo.png', 'PUT', png(10, 10));
    expect(missing.status).toBe(404);
  });
});

async function rawBundle(path: string): Promise<Buffer> {
  const response = await fetch(`${server.baseUrl}${path}/pkpass`, {
    headers: { authorization: `Bearer ${adminToken}` },
  });
  return Buffer.from(await response.arrayBuffer());
}
