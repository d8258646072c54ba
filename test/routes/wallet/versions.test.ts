import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabaseKind } from '../../support/database.js';
import { startTestServer, type TestServer } from '../../support/server.js';
import { WalletDevice } from '../../support/wallet-device.js';

let server: TestServer;
let now = new Date('2026-11-23T10:00:00.250Z');

beforeAll(async () => {
  server = await startTestServer({ clock: { now: () => now } });
});
afterAll(async () => {
  await server?.close();
});

async function passOnDevice(device: WalletDevice, template = 'loyalty') {
  const created = await server.admin('POST', '/admin/passes', { template });
  const pass = created.body as { passTypeIdentifier: string; serialNumber: string; downloadUrl: string };
  const bundle = Buffer.from(await (await fetch(pass.downloadUrl)).arrayBuffer());
  expect((await device.add(bundle)).status).toBe(201);
  return pass;
}

describe('Last-Modified', () => {
  it('strictly increases even for two changes within one second, so If-Modified-Since never hides one', async () => {
    const device = new WalletDevice();
    const pass = await passOnDevice(device);
    const path = `/admin/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`;
    expect(await device.fetchLatest(pass.serialNumber)).toBe(200);
    const first = device.held(pass.serialNumber).lastModified;

    // The clock does not move: both changes happen within the same second as the creation.
    await server.admin('PATCH', path, { fields: { points: 1 } });
    expect(await device.fetchLatest(pass.serialNumber)).toBe(200);
    const second = device.held(pass.serialNumber).lastModified;
    await server.admin('PATCH', path, { fields: { points: 2 } });
    expect(await device.fetchLatest(pass.serialNumber)).toBe(200);
    const third = device.held(pass.serialNumber).lastModified;

    const times = [first, second, third].map((value) => Date.parse(String(value)));
    expect(times[1]).toBeGreaterThan(times[0] ?? Number.NaN);
    expect(times[2]).toBeGreaterThan(times[1] ?? Number.NaN);
    expect(await device.fetchLatest(pass.serialNumber)).toBe(304);
    now = new Date(now.getTime() + 60_000);
  });
});

describe('lastUpdated tags', () => {
  it.skipIf(testDatabaseKind !== 'postgresql')(
    'return a change that commits after the tag was handed out, even though it began before',
    async () => {
      const device = new WalletDevice();
      const pass = await passOnDevice(device);
      await device.listUpdated(server.baseUrl, pass.passTypeIdentifier);

      // A change in flight on another connection: it has its transaction id, but has not committed yet.
      const writer = new pg.Client({ connectionString: (server.database as { url?: string }).url });
      await writer.connect();
      await writer.query('BEGIN');
      await writer.query(
        `UPDATE passes SET version = version + 1, update_xid = pg_current_xact_id()::text::bigint,
         last_modified = last_modified + interval '1 second' WHERE serial_number = $1`,
        [pass.serialNumber],
      );
      // Meanwhile the device polls and gets a tag; the uncommitted change is invisible to it.
      expect(await device.listUpdated(server.baseUrl, pass.passTypeIdentifier)).toEqual([]);
      // Another pass changes and commits, so the device is handed a newer tag than the in-flight change's start.
      const other = await passOnDevice(device);
      await server.admin('PATCH', `/admin/passes/${other.passTypeIdentifier}/${other.serialNumber}`, {
        fields: { points: 5 },
      });
      expect(await device.listUpdated(server.baseUrl, pass.passTypeIdentifier)).toContain(other.serialNumber);

      await writer.query('COMMIT');
      await writer.end();
      expect(await device.listUpdated(server.baseUrl, pass.passTypeIdentifier)).toContain(pass.serialNumber);
    },
  );

  it.skipIf(testDatabaseKind !== 'postgresql')(
    'do not re-list a change that was already seen while an unrelated transaction stays open',
    async () => {
      const device = new WalletDevice();
      const pass = await passOnDevice(device);
      // An older transaction elsewhere in the cluster keeps the snapshot's xmin from advancing.
      const idle = new pg.Client({ connectionString: (server.database as { url?: string }).url });
      await idle.connect();
      await idle.query('BEGIN');
      await idle.query('SELECT pg_current_xact_id()');
      try {
        await server.admin('PATCH', `/admin/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`, {
          fields: { points: 7 },
        });
        expect(await device.listUpdated(server.baseUrl, pass.passTypeIdentifier)).toEqual([
          pass.serialNumber,
        ]);
        expect(await device.listUpdated(server.baseUrl, pass.passTypeIdentifier)).toEqual([]);
      } finally {
        await idle.query('ROLLBACK');
        await idle.end();
      }
    },
  );

  it('never lets a device miss an update while many changes and polls run concurrently', async () => {
    const devices = [new WalletDevice(), new WalletDevice(), new WalletDevice()];
    const passes = [];
    for (let i = 0; i < 4; i++) {
      const pass = await passOnDevice(devices[0] as WalletDevice);
      for (const device of devices.slice(1)) {
        await device.add((devices[0] as WalletDevice).held(pass.serialNumber).bundle);
      }
      passes.push(pass);
    }
    const passTypeIdentifier = passes[0]?.passTypeIdentifier ?? '';
    for (const device of devices) await device.sync(server.baseUrl, passTypeIdentifier);

    let changing = true;
    const changes = (async () => {
      for (let round = 1; round <= 6; round++) {
        await Promise.all(
          passes.map((pass) =>
            server.admin('PATCH', `/admin/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`, {
              fields: { points: round },
            }),
          ),
        );
      }
      changing = false;
    })();
    const polls = devices.map(async (device) => {
      while (changing) await device.sync(server.baseUrl, passTypeIdentifier);
    });
    await Promise.all([changes, ...polls]);
    // One more poll after the last change, as after its push: every device must now hold every pass's last version.
    for (const device of devices) {
      await device.sync(server.baseUrl, passTypeIdentifier);
      for (const pass of passes) {
        expect(JSON.stringify(device.held(pass.serialNumber).passJson)).toContain('"value":6');
      }
    }
  });
});
