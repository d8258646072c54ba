/*
 * ROLES: one image run as a subset of api (Apple's JSON endpoints, the admin JSON API), downloads (pass downloads and
 * signing) and workers (push worker, bulk runner). A real server process with one role: only its routes answer, and
 * /readyz checks only what it runs (no push worker here, and still ready).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createFreshPostgresDatabase, testDatabaseUrl } from '../support/database.js';
import { type ServerProcess, serverProcessTimeout, startServerProcess } from '../support/process.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

const adminToken = 'roles-admin-token-0123456789abcdef';

describe('ROLES', () => {
  it('is read from the environment: all three by default, any subset, nothing else', () => {
    expect([...loadConfig({}).roles]).toEqual(['api', 'downloads', 'workers']);
    expect([...loadConfig({ ROLES: 'workers, api' }).roles]).toEqual(['api', 'workers']);
    expect(() => loadConfig({ ROLES: 'api,web' })).toThrow(/ROLES/);
    expect(() => loadConfig({ ROLES: ' , ' })).toThrow(/ROLES/);
  });

  it(
    'api only: the JSON endpoints answer, downloads are not served here, ready without a push worker',
    async () => {
      const env: Record<string, string> = {
        DATA_DIR: await mkdtemp(join(tmpdir(), 'pks-roles-')),
        ADMIN_TOKEN: adminToken,
        ROLES: 'api',
      };
      if (testDatabaseUrl) {
        const database = await createFreshPostgresDatabase(testDatabaseUrl);
        cleanups.push(database.drop);
        env.DATABASE_URL = database.url;
      }
      // startServerProcess waits for /readyz to answer 200.
      const server = await startServerProcess(env);
      const call = (method: string, path: string, headers: Record<string, string> = {}, body?: unknown) =>
        fetch(`${server.baseUrl}${path}`, {
          method,
          headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
      const admin = { authorization: `Bearer ${adminToken}` };
      try {
        expect(await (await call('GET', '/readyz')).json()).toEqual({ status: 'ready' });

        const created = await call('POST', '/admin/passes', admin, { template: 'loyalty' });
        expect(created.status).toBe(201);
        const pass = (await created.json()) as {
          passTypeIdentifier: string;
          serialNumber: string;
          downloadUrl: string;
        };
        const passPath = `${pass.passTypeIdentifier}/${pass.serialNumber}`;
        expect((await call('GET', `/admin/passes/${passPath}`, admin)).status).toBe(200);
        expect((await call('GET', '/admin/templates', admin)).status).toBe(200);
        expect((await call('POST', '/v1/log', {}, { logs: [] })).status).toBe(200);
        expect((await call('GET', '/v1/devices/d1/registrations/pass.x')).status).toBe(204);

        // The downloads role's routes: no such route on this instance.
        const downloadPath = new URL(pass.downloadUrl);
        for (const path of [
          `/v1/passes/${passPath}`,
          `/admin/passes/${passPath}/pkpass`,
          `${downloadPath.pathname}${downloadPath.search}`,
        ]) {
          const answer = await call('GET', path, admin);
          expect(answer.status, path).toBe(404);
          expect(await answer.json()).toMatchObject({ error: 'not_found' });
        }
      } finally {
        server.child.kill('SIGTERM');
        expect(await server.exited).toBe(0);
      }
    },
    serverProcessTimeout,
  );

  // Instances with different roles share one database, so PostgreSQL only (PGlite is one process's).
  it.skipIf(!testDatabaseUrl)(
    'apart and together: api beside downloads,workers on one database; each answers its own routes only',
    async () => {
      const database = await createFreshPostgresDatabase(testDatabaseUrl ?? '');
      cleanups.push(database.drop);
      // One DATA_DIR: both sign with the same development identity, as instances share one identity in production.
      const shared = {
        DATA_DIR: await mkdtemp(join(tmpdir(), 'pks-roles-')),
        ADMIN_TOKEN: adminToken,
        DATABASE_URL: database.url,
      };
      const started: ServerProcess[] = [];
      try {
        const api = await startServerProcess({ ...shared, ROLES: 'api' });
        started.push(api);
        const downloads = await startServerProcess({ ...shared, ROLES: 'downloads,workers' });
        started.push(downloads);
        const admin = { authorization: `Bearer ${adminToken}` };

        const created = await fetch(`${api.baseUrl}/admin/passes`, {
          method: 'POST',
          headers: { ...admin, 'content-type': 'application/json' },
          body: JSON.stringify({ template: 'loyalty' }),
        });
        expect(created.status).toBe(201);
        const pass = (await created.json()) as {
          passTypeIdentifier: string;
          serialNumber: string;
          downloadUrl: string;
        };
        const passPath = `${pass.passTypeIdentifier}/${pass.serialNumber}`;
        const link = new URL(pass.downloadUrl);

        // The pass the api instance created is served by the downloads instance: through the link and to the admin.
        for (const [path, headers] of [
          [`${link.pathname}${link.search}`, {}],
          [`/admin/passes/${passPath}/pkpass`, admin],
        ] as const) {
          const answer = await fetch(`${downloads.baseUrl}${path}`, { headers });
          expect(answer.status, path).toBe(200);
          expect(answer.headers.get('content-type')).toBe('application/vnd.apple.pkpass');
          expect(
            Buffer.from(await answer.arrayBuffer())
              .subarray(0, 2)
              .toString('latin1'),
          ).toBe('PK');
        }
        // Apple's JSON endpoints and the admin JSON API are the api instance's.
        for (const [method, path] of [
          ['GET', `/admin/passes/${passPath}`],
          ['GET', '/admin/templates'],
          ['GET', '/v1/devices/d1/registrations/pass.x'],
        ] as const) {
          const answer = await fetch(`${downloads.baseUrl}${path}`, { method, headers: admin });
          expect(answer.status, path).toBe(404);
        }
        expect(await (await fetch(`${downloads.baseUrl}/readyz`)).json()).toEqual({ status: 'ready' });
      } finally {
        for (const server of started) {
          server.child.kill('SIGTERM');
          expect(await server.exited).toBe(0);
        }
      }
    },
    serverProcessTimeout,
  );
});
