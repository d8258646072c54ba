/*
 * GET /v1/passes answers from remembered credentials (src/wallet/known-passes.ts) kept fresh by the pass change
 * feed (src/db/pass-changes.ts). These tests change passes behind the server's back, with plain SQL, and check that
 * the very next request sees the change; and, with the notification trigger switched off, that the server really
 * answers from memory (so the freshness above is the feed's doing, not a database read).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CreatedPass, createPass } from '../routes/wallet/pass-fixtures.js';
import { testDatabaseKind } from '../support/database.js';
import { startTestServer, type TestServer } from '../support/server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

/** The pass as Wallet fetches it; with `since`, conditionally (a stale version would answer 304). */
async function getPass(pass: CreatedPass, options: { token?: string; since?: string | null } = {}) {
  const response = await fetch(
    `${server.baseUrl}/v1/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`,
    {
      headers: {
        authorization: `ApplePass ${options.token ?? pass.authenticationToken}`,
        ...(options.since ? { 'if-modified-since': options.since } : {}),
      },
    },
  );
  await response.arrayBuffer();
  return { status: response.status, lastModified: response.headers.get('last-modified') };
}

/** Changes a pass with SQL only, as another instance or tool would: a new version one second later. */
async function changeBehindTheServersBack(
  pass: CreatedPass,
  set = "last_modified = last_modified + interval '1 second'",
) {
  await server.database.prisma.$executeRawUnsafe(
    `UPDATE passes SET version = version + 1, ${set} WHERE pass_type_identifier = $1 AND serial_number = $2`,
    pass.passTypeIdentifier,
    pass.serialNumber,
  );
}

async function withoutNotifications(run: () => Promise<void>) {
  await server.database.prisma.$executeRawUnsafe('ALTER TABLE passes DISABLE TRIGGER passes_notify_change');
  try {
    await run();
  } finally {
    await server.database.prisma.$executeRawUnsafe('ALTER TABLE passes ENABLE TRIGGER passes_notify_change');
  }
}

describe('remembered pass credentials', () => {
  it('serve a change made with plain SQL on the very next request', async () => {
    const pass = await createPass(server);
    const first = await getPass(pass);
    expect(first.status).toBe(200);
    for (let i = 0; i < 5; i++) {
      await changeBehindTheServersBack(pass);
      const next = await getPass(pass, { since: first.lastModified });
      expect(next.status).toBe(200);
      expect(Date.parse(next.lastModified ?? '')).toBe(Date.parse(first.lastModified ?? '') + (i + 1) * 1000);
    }
  });

  it('refuse an old token at once after the token changed, and accept the new one', async () => {
    const pass = await createPass(server);
    expect((await getPass(pass)).status).toBe(200);
    await changeBehindTheServersBack(pass, "authentication_token = 'a-new-token-a-new-token-a-new-tok'");
    expect((await getPass(pass)).status).toBe(401);
    expect((await getPass(pass, { token: 'a-new-token-a-new-token-a-new-tok' })).status).toBe(200);
  });

  it('answer 401 for a pass until it exists, then 200 (creation notifies too)', async () => {
    const pass = await createPass(server);
    const renamed = { ...pass, serialNumber: `${pass.serialNumber}-renamed` };
    expect((await getPass(renamed)).status).toBe(401);
    await changeBehindTheServersBack(pass, `serial_number = '${renamed.serialNumber}'`);
    expect((await getPass(renamed)).status).toBe(200);
    expect((await getPass(pass)).status).toBe(401);
  });

  it('are really remembered: without the notification trigger, a change goes unseen', async () => {
    const pass = await createPass(server);
    const before = await getPass(pass);
    expect(before.status).toBe(200);
    await withoutNotifications(async () => {
      await changeBehindTheServersBack(pass);
      expect((await getPass(pass, { since: before.lastModified })).status).toBe(304);
    });
    // The next change notifies, and the pass is read again.
    await changeBehindTheServersBack(pass);
    expect(Date.parse((await getPass(pass)).lastModified ?? '')).toBe(
      Date.parse(before.lastModified ?? '') + 2000,
    );
  });

  it.skipIf(testDatabaseKind !== 'postgresql')(
    'are forgotten when the LISTEN session is lost: changes made meanwhile are served, and again after it is back',
    async () => {
      const pass = await createPass(server);
      const before = await getPass(pass);
      await withoutNotifications(async () => {
        await server.database.prisma.$executeRawUnsafe(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE application_name = 'passkit-server listen' AND datname = current_database()`,
        );
        await changeBehindTheServersBack(pass);
        // Until the session is back (a quarter of a second), and after: always the database's version.
        const until = Date.now() + 1500;
        while (Date.now() < until) {
          expect((await getPass(pass, { since: before.lastModified })).status).toBe(200);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      });
      await changeBehindTheServersBack(pass);
      expect(Date.parse((await getPass(pass)).lastModified ?? '')).toBe(
        Date.parse(before.lastModified ?? '') + 2000,
      );
    },
  );
});
