import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, startTestServer, type TestServer } from '../../support/server.js';
import { WalletDevice } from '../../support/wallet-device.js';

/*
 * Once the signing certificate has expired (the clock is moved past its notAfter), the server keeps serving every
 * pass from the bundle signed before, and refuses what would need a new signature with a 409 that says why.
 */

let server: TestServer;
let now = new Date();

beforeAll(async () => {
  server = await startTestServer({ clock: { now: () => now } });
});
afterAll(async () => {
  await server?.close();
});

describe('an expired signing certificate', () => {
  it('serves the passes as last signed and refuses to create or change one, naming the expiry', async () => {
    const created = await server.admin('POST', '/admin/passes', {
      template: 'loyalty',
      fields: { points: 5 },
    });
    expect(created.status).toBe(201);
    const path = `/admin/passes/${created.body.passTypeIdentifier}/${created.body.serialNumber}`;
    const signed = await fetch(`${server.baseUrl}${path}/pkpass`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const bundle = Buffer.from(await signed.arrayBuffer());
    const device = new WalletDevice();
    expect((await device.add(bundle)).status).toBe(201);

    now = new Date(server.identity.notAfter.getTime() + 60_000);

    const refusedCreate = await server.admin('POST', '/admin/passes', { template: 'loyalty' });
    expect(refusedCreate.status).toBe(409);
    expect(refusedCreate.body).toMatchObject({
      error: 'certificate_expired',
      message: expect.stringContaining(`expired on ${server.identity.notAfter.toISOString()}`),
    });
    const refusedChange = await server.admin('PATCH', path, { fields: { points: 6 } });
    expect(refusedChange.status).toBe(409);
    expect(refusedChange.body.error).toBe('certificate_expired');
    // Nothing changed: the pass is at its first version, and Wallet gets the bundle signed before.
    expect((await server.admin('GET', path)).body).toMatchObject({ version: 1, fields: { points: 5 } });
    const held = device.held(String(created.body.serialNumber));
    const latest = await fetch(
      `${held.webServiceURL}/v1/passes/${held.passTypeIdentifier}/${held.serialNumber}`,
      { headers: { authorization: `ApplePass ${held.authenticationToken}` } },
    );
    expect(latest.status).toBe(200);
    expect(Buffer.from(await latest.arrayBuffer()).equals(bundle)).toBe(true);
  });
});
