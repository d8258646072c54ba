import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../../src/paths.js';
import { adminToken, startTestServer, type TestServer } from '../../support/server.js';

const CHANGES = 50;
const keys = Array.from({ length: CHANGES }, (_, i) => `note${i}`);

let server: TestServer;

beforeAll(async () => {
  // The loyalty template with one back field per change, so each change can add a value of its own.
  const modelsDir = await mkdtemp(join(tmpdir(), 'concurrent-models-'));
  const dir = join(modelsDir, 'notes.pass');
  await cp(join(projectRoot, 'models', 'loyalty.pass'), dir, { recursive: true });
  const passJson = JSON.parse(await readFile(join(dir, 'pass.json'), 'utf8')) as {
    storeCard: { backFields: unknown[] };
  };
  passJson.storeCard.backFields.push(...keys.map((key) => ({ key, label: key, value: '-' })));
  await writeFile(join(dir, 'pass.json'), JSON.stringify(passJson));
  server = await startTestServer({ modelsDir });
});
afterAll(async () => {
  await server?.close();
});

describe('concurrent changes of one pass', () => {
  it(`serialises ${CHANGES} parallel PATCHes: each is answered 200 and every value is in the final version`, async () => {
    const created = await server.admin('POST', '/admin/passes', { template: 'notes' });
    expect(created.status).toBe(201);
    const path = `/admin/passes/${created.body.passTypeIdentifier}/${created.body.serialNumber}`;

    const answers = await Promise.all(
      keys.map((key) => server.admin('PATCH', path, { fields: { [key]: `value of ${key}` } })),
    );
    expect(answers.map((answer) => answer.status)).toEqual(keys.map(() => 200));
    // Each change made a version of its own: none was lost to another's read of the pass.
    expect(answers.map((answer) => answer.body.version).sort((a, b) => Number(a) - Number(b))).toEqual(
      keys.map((_, i) => i + 2),
    );

    const final = await server.admin('GET', path);
    expect(final.body.version).toBe(CHANGES + 1);
    expect(final.body.fields).toEqual(Object.fromEntries(keys.map((key) => [key, `value of ${key}`])));
  });

  it('answers 503 with Retry-After, changing nothing, when the pass stays locked past the change timeout', async () => {
    const created = await server.admin('POST', '/admin/passes', { template: 'notes' });
    const path = `/admin/passes/${created.body.passTypeIdentifier}/${created.body.serialNumber}`;
    let locked = () => {};
    const lockTaken = new Promise<void>((resolve) => {
      locked = resolve;
    });
    // Another holder of the pass's row (a bulk page, another server instance): longer than a change may wait.
    const holder = server.database.transaction(async (query) => {
      await query('SELECT id FROM passes WHERE serial_number = $1 FOR UPDATE', [created.body.serialNumber]);
      locked();
      await new Promise((resolve) => setTimeout(resolve, 6_000));
    });
    await lockTaken;
    let released = false;
    void holder.then(() => {
      released = true;
    });
    const response = await fetch(`${server.baseUrl}${path}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ fields: { note0: 'late' } }),
    });
    // At the change's deadline, not whenever the lock is let go (PGlite: not when its one transaction ends).
    expect(released).toBe(false);
    await holder;
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await response.json()).toMatchObject({ statusCode: 503, error: 'unavailable' });
    const after = await server.admin('GET', path);
    expect(after.body).toMatchObject({ version: 1, fields: {} });
    // Sent again once the lock is gone, the same change is taken.
    expect((await server.admin('PATCH', path, { fields: { note0: 'late' } })).body).toMatchObject({
      version: 2,
    });
  });
});
