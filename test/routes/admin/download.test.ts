import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../support/server.js';
import { readPassJson } from '../../support/wallet-device.js';

/* Download links (GET /download/…?expires&signature) over real HTTP, with a clock the test moves. */
let server: TestServer;
let now = new Date();

beforeAll(async () => {
  server = await startTestServer({ clock: { now: () => now } });
});
afterAll(async () => {
  await server?.close();
});

async function create(serialNumber: string) {
  const created = await server.admin('POST', '/admin/passes', { template: 'coupon', serialNumber });
  expect(created.status).toBe(201);
  const { passTypeIdentifier } = created.body as { passTypeIdentifier: string };
  const { authenticationToken } = await server.database.prisma.pass.findUniqueOrThrow({
    where: { passTypeIdentifier_serialNumber: { passTypeIdentifier, serialNumber } },
  });
  return {
    downloadUrl: String(created.body.downloadUrl),
    authenticationToken,
    path: `/admin/passes/${passTypeIdentifier}/${serialNumber}`,
  };
}

describe('download links', () => {
  it('serve the pass they were made for, and not a pass created later under the same serial number', async () => {
    const first = await create('recreated');
    const served = await fetch(first.downloadUrl);
    expect(served.status).toBe(200);
    expect(readPassJson(Buffer.from(await served.arrayBuffer())).authenticationToken).toBe(
      first.authenticationToken,
    );

    expect((await server.admin('DELETE', first.path)).status).toBe(204);
    const deleted = await fetch(first.downloadUrl);
    expect(deleted.status).toBe(403);
    await deleted.arrayBuffer();

    const second = await create('recreated');
    expect(second.authenticationToken).not.toBe(first.authenticationToken);
    const old = await fetch(first.downloadUrl);
    expect(old.status).toBe(403);
    expect(await old.json()).toMatchObject({ statusCode: 403, message: 'This download link is not valid' });

    const fresh = await fetch(second.downloadUrl);
    expect(fresh.status).toBe(200);
    expect(readPassJson(Buffer.from(await fresh.arrayBuffer())).authenticationToken).toBe(
      second.authenticationToken,
    );
  });

  it('answer 403 when tampered with, and 410 once expired', async () => {
    const pass = await create('expiring');
    const tampered = new URL(pass.downloadUrl);
    tampered.searchParams.set('expires', String(Number(tampered.searchParams.get('expires')) + 1));
    const forged = await fetch(tampered);
    expect(forged.status).toBe(403);
    await forged.arrayBuffer();

    now = new Date(now.getTime() + 3601 * 1000);
    const expired = await fetch(pass.downloadUrl);
    expect(expired.status).toBe(410);
    expect(await expired.json()).toMatchObject({
      statusCode: 410,
      message: 'This download link has expired',
    });
  });
});
