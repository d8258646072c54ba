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
import { startServerProcess } from '../support/process.js';

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

  it('api only: the JSON endpoints answer, downloads are not served here, ready without a push worker', async () => {
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
  });
});
