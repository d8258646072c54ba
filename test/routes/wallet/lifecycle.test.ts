import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPkpass } from '../../support/pkpass-verifier.js';
import { startTestServer, type TestServer } from '../../support/server.js';
import { WalletDevice } from '../../support/wallet-device.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

async function createPass(body: Record<string, unknown>) {
  const created = await server.admin('POST', '/admin/passes', body);
  expect(created.status).toBe(201);
  return created.body as { passTypeIdentifier: string; serialNumber: string; downloadUrl: string };
}

async function download(url: string) {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('application/vnd.apple.pkpass');
  return Buffer.from(await response.arrayBuffer());
}

describe('a Wallet device through the whole lifecycle', () => {
  it('downloads, registers, polls with the tag, fetches new versions, unregisters and logs', async () => {
    const pass = await createPass({ template: 'loyalty', fields: { points: 120 } });
    const bundle = await download(pass.downloadUrl);
    const verified = await verifyPkpass(bundle, server.pki.wwdrPem);
    expect(verified.passJson.webServiceURL).toBe(server.baseUrl);
    expect(String(verified.passJson.authenticationToken).length).toBeGreaterThanOrEqual(32);

    const device = new WalletDevice();
    expect((await device.add(bundle)).status).toBe(201);
    expect((await device.register(pass.serialNumber)).status).toBe(200);

    // No tag: every registered pass of the type, with a string tag.
    expect(await device.listUpdated(server.baseUrl, pass.passTypeIdentifier)).toEqual([pass.serialNumber]);
    expect(typeof device.tags.get(pass.passTypeIdentifier)).toBe('string');
    // Nothing changed since that tag: 204.
    expect(await device.listUpdated(server.baseUrl, pass.passTypeIdentifier)).toEqual([]);
    expect(await device.fetchLatest(pass.serialNumber)).toBe(200);
    expect(await device.fetchLatest(pass.serialNumber)).toBe(304);

    const changed = await server.admin(
      'PATCH',
      `/admin/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`,
      {
        fields: { points: 250 },
        changeMessages: { points: 'You now have %@ points' },
      },
    );
    expect(changed.status).toBe(200);
    expect(changed.body.version).toBe(2);

    expect(await device.sync(server.baseUrl, pass.passTypeIdentifier)).toEqual([pass.serialNumber]);
    const latest = await verifyPkpass(device.held(pass.serialNumber).bundle, server.pki.wwdrPem);
    expect(JSON.stringify(latest.passJson)).toContain('"value":250');
    expect(JSON.stringify(latest.passJson)).toContain('You now have %@ points');
    expect(await device.fetchLatest(pass.serialNumber)).toBe(304);
    expect(await device.listUpdated(server.baseUrl, pass.passTypeIdentifier)).toEqual([]);

    expect((await device.unregister(pass.serialNumber)).status).toBe(200);
    expect((await device.unregister(pass.serialNumber)).status).toBe(200);
    const devices = await server.database.prisma.device.count({
      where: { deviceLibraryIdentifier: device.deviceLibraryIdentifier },
    });
    expect(devices).toBe(0);
    expect(await device.listUpdated(server.baseUrl, pass.passTypeIdentifier)).toEqual([]);

    expect((await device.log(server.baseUrl, ['Web service error for pass: something odd'])).status).toBe(
      200,
    );
    const logs = await server.admin('GET', '/admin/logs');
    expect(JSON.stringify(logs.body)).toContain('something odd');
  });

  it('records one push per registered push token in the change, and nothing for a change that fails', async () => {
    const pass = await createPass({ template: 'event' });
    const bundle = await download(pass.downloadUrl);
    const devices = [new WalletDevice(), new WalletDevice(), new WalletDevice()];
    for (const device of devices) expect((await device.add(bundle)).status).toBe(201);
    const path = `/admin/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`;
    const outbox = () =>
      server.database.prisma.pushOutbox.findMany({ where: { passTypeIdentifier: pass.passTypeIdentifier } });
    const before = (await outbox()).length;

    expect((await server.admin('PATCH', path, { pass: { backgroundColor: 'not a color' } })).status).toBe(
      400,
    );
    expect((await outbox()).length).toBe(before);

    expect((await server.admin('PATCH', path, { pass: { voided: true } })).status).toBe(200);
    const tokens = (await outbox()).map((row) => row.pushToken);
    for (const device of devices) expect(tokens).toContain(device.pushToken);
  });

  it('answers 401 for a wrong token, another pass token, or an unknown pass', async () => {
    const a = await createPass({ template: 'coupon' });
    const b = await createPass({ template: 'coupon' });
    const device = new WalletDevice();
    await device.add(await download(a.downloadUrl));
    await device.add(await download(b.downloadUrl));
    expect((await device.register(a.serialNumber, 'x'.repeat(32))).status).toBe(401);
    expect(
      (await device.register(a.serialNumber, device.held(b.serialNumber).authenticationToken)).status,
    ).toBe(401);
    const held = device.held(a.serialNumber);
    const fetchWith = (authorization?: string) =>
      fetch(`${server.baseUrl}/v1/passes/${held.passTypeIdentifier}/${held.serialNumber}`, {
        headers: authorization ? { authorization } : {},
      });
    expect((await fetchWith()).status).toBe(401);
    expect((await fetchWith(`ApplePass ${device.held(b.serialNumber).authenticationToken}`)).status).toBe(
      401,
    );
    expect((await fetchWith(`Bearer ${held.authenticationToken}`)).status).toBe(401);
    const unknown = await fetch(`${server.baseUrl}/v1/passes/${held.passTypeIdentifier}/no-such-serial`, {
      headers: { authorization: `ApplePass ${held.authenticationToken}` },
    });
    expect(unknown.status).toBe(401);
    expect(await unknown.json()).toMatchObject({ statusCode: 401 });
    expect((await device.unregister(a.serialNumber, 'wrong-token-wrong-token')).status).toBe(401);
  });

  it('keeps a changed push token on re-registration', async () => {
    const pass = await createPass({ template: 'membership' });
    const device = new WalletDevice();
    await device.add(await download(pass.downloadUrl));
    device.pushToken = 'ab'.repeat(32);
    expect((await device.register(pass.serialNumber)).status).toBe(200);
    const stored = await server.database.prisma.device.findUniqueOrThrow({
      where: { deviceLibraryIdentifier: device.deviceLibraryIdentifier },
    });
    expect(stored.pushToken).toBe('ab'.repeat(32));
  });
});
