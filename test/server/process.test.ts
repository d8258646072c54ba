import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateDevelopmentIdentity } from '../../src/signing/dev-identity.js';
import { serverDataEnv } from '../support/database.js';
import { createTestPki } from '../support/pki.js';
import { verifyPkpass } from '../support/pkpass-verifier.js';
import {
  freePort,
  type ServerProcess,
  serverProcessTimeout,
  startServerProcess,
} from '../support/process.js';

const cleanups: Array<() => Promise<void>> = [];
const strongToken = randomBytes(32).toString('hex');
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

function admin(server: ServerProcess, token: string, method: string, path: string, body?: unknown) {
  return fetch(`${server.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

describe('the server process', { timeout: serverProcessTimeout }, () => {
  it('starts with no configuration: development identity, printed admin token and curl, signed passes', async () => {
    // A first start: the server migrates the empty database itself.
    const data = await serverDataEnv(cleanups, { fromNothing: true });
    const dataDir = String(data.DATA_DIR);
    const server = await startServerProcess(data);
    try {
      const token = /Admin token[^\n]*\n\s+(\S+)/.exec(server.output())?.[1];
      expect(token).toBeDefined();
      expect(server.output()).toMatch(/will not install on real devices/i);
      expect(server.output()).toContain(
        `curl -s -X POST ${server.baseUrl.replace('127.0.0.1', 'localhost')}/admin/passes`,
      );
      const created = await admin(server, String(token), 'POST', '/admin/passes', { template: 'loyalty' });
      expect(created.status).toBe(201);
      const { downloadUrl } = (await created.json()) as { downloadUrl: string };
      // PUBLIC_URL defaults to http://localhost:$PORT; fetch it on the loopback address it listens on.
      const bundle = Buffer.from(
        await (await fetch(downloadUrl.replace('localhost', '127.0.0.1'))).arrayBuffer(),
      );
      const wwdr = await import('node:fs/promises').then((fs) =>
        fs.readFile(join(dataDir, 'dev-certificates', 'wwdr.pem'), 'utf8'),
      );
      await verifyPkpass(bundle, wwdr);
    } finally {
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
  });

  it('keeps every committed change across kill -9, identities added through the API included', async () => {
    // No files of its own (the development identity is the primary one), one brand in a subfolder.
    const [folderBrand, apiBrand] = await Promise.all([
      createTestPki({ passTypeIdentifier: 'pass.test.process-folder' }),
      createTestPki({ passTypeIdentifier: 'pass.test.process-api' }),
    ]);
    const certificatesDir = await mkdtemp(join(tmpdir(), 'pks-process-certificates-'));
    await cp(folderBrand.certificatesDir, join(certificatesDir, 'folder-brand'), { recursive: true });
    const env = {
      ADMIN_TOKEN: 'kill-test-admin-token-0123456789',
      CERTIFICATES_DIR: certificatesDir,
      IDENTITY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      ...(await serverDataEnv(cleanups)),
    };
    const port = await freePort();
    const first = await startServerProcess(env, port);
    const added = await admin(first, env.ADMIN_TOKEN, 'POST', '/admin/identities', {
      certificate: apiBrand.signerCertPem,
      privateKey: apiBrand.signerKeyPem,
      wwdr: apiBrand.wwdrPem,
    });
    expect(added.status).toBe(201);
    const apiPass = await admin(first, env.ADMIN_TOKEN, 'POST', '/admin/passes', {
      passTypeIdentifier: 'pass.test.process-api',
      serialNumber: 'process-api-1',
      template: 'coupon',
    });
    expect(apiPass.status).toBe(201);
    const serials: string[] = [];
    for (let i = 0; i < 5; i++) {
      const created = await admin(first, env.ADMIN_TOKEN, 'POST', '/admin/passes', { template: 'coupon' });
      expect(created.status).toBe(201);
      serials.push(((await created.json()) as { serialNumber: string }).serialNumber);
    }
    const type = 'pass.dev.passkit-server';
    const changed = await admin(first, env.ADMIN_TOKEN, 'PATCH', `/admin/passes/${type}/${serials[4]}`, {
      pass: { voided: true },
    });
    expect(changed.status).toBe(200);
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await startServerProcess(env, port);
    try {
      for (const serial of serials) {
        expect((await admin(second, env.ADMIN_TOKEN, 'GET', `/admin/passes/${type}/${serial}`)).status).toBe(
          200,
        );
      }
      const last = (await (
        await admin(second, env.ADMIN_TOKEN, 'GET', `/admin/passes/${type}/${serials[4]}`)
      ).json()) as {
        version: number;
        pass: { voided?: boolean };
      };
      expect(last.version).toBe(2);
      expect(last.pass.voided).toBe(true);
      const listed = (await (await admin(second, env.ADMIN_TOKEN, 'GET', '/admin/identities')).json()) as {
        identities: Array<{ passTypeIdentifier: string; source: string }>;
      };
      expect(listed.identities.map((each) => [each.passTypeIdentifier, each.source])).toEqual([
        ['pass.dev.passkit-server', 'configuration'],
        ['pass.test.process-api', 'api'],
        ['pass.test.process-folder', 'configuration'],
      ]);
      // The stored key opened after the restart: a change of the API brand's pass is signed with it.
      const changedApi = await admin(
        second,
        env.ADMIN_TOKEN,
        'PATCH',
        '/admin/passes/pass.test.process-api/process-api-1',
        {
          pass: { voided: true },
        },
      );
      expect(changedApi.status).toBe(200);
      const bundle = await admin(
        second,
        env.ADMIN_TOKEN,
        'GET',
        '/admin/passes/pass.test.process-api/process-api-1/pkpass',
      );
      await verifyPkpass(Buffer.from(await bundle.arrayBuffer()), apiBrand.wwdrPem);
      const folderPass = await admin(second, env.ADMIN_TOKEN, 'POST', '/admin/passes', {
        passTypeIdentifier: 'pass.test.process-folder',
        template: 'coupon',
      });
      expect(folderPass.status).toBe(201);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });

  it('refuses to start in production without certificates or with an invalid variable, naming it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'pks-prod-'));
    const run = (env: Record<string, string>) =>
      startServerProcess({ DATA_DIR: dataDir, ...env }).then(
        () => 'started',
        (error: Error) => error.message,
      );
    expect(
      await run({
        NODE_ENV: 'production',
        PUBLIC_URL: 'https://passes.example.com',
        ADMIN_TOKEN: strongToken,
      }),
    ).toMatch(/certificates/i);
    expect(await run({ NODE_ENV: 'production', PUBLIC_URL: 'https://passes.example.com' })).toMatch(
      /ADMIN_TOKEN/,
    );
    expect(
      await run({
        NODE_ENV: 'production',
        PUBLIC_URL: 'https://passes.example.com',
        ADMIN_TOKEN: 'aaaaaaaaaaaaaaaa',
      }),
    ).toMatch(/ADMIN_TOKEN: must be at least 32 characters in production/);
    expect(await run({ PORT: 'eighty' })).toMatch(/PORT/);
  });

  it('refuses the development identity copied into CERTIFICATES_DIR in production, unless ALLOW_INSECURE_PRODUCTION', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'pks-prod-'));
    const certificatesDir = join(dataDir, 'certificates');
    const pems = generateDevelopmentIdentity(
      { passTypeIdentifier: 'pass.dev.passkit-server', teamIdentifier: 'DEVTEAM000' },
      new Date(),
    );
    await mkdir(certificatesDir);
    await writeFile(join(certificatesDir, 'signerCert.pem'), pems.signerCert);
    await writeFile(join(certificatesDir, 'signerKey.pem'), pems.signerKey);
    await writeFile(join(certificatesDir, 'wwdr.pem'), pems.wwdr);
    const env = {
      NODE_ENV: 'production',
      PUBLIC_URL: 'https://passes.example.com',
      DATA_DIR: dataDir,
      CERTIFICATES_DIR: certificatesDir,
    };
    const refused = await startServerProcess({ ...env, ADMIN_TOKEN: strongToken }).then(
      () => 'started',
      (error: Error) => error.message,
    );
    expect(refused).toMatch(/wwdr.pem is not Apple's WWDR intermediate/);

    // A staging server: starts, and says at start what it let through.
    const staging = await startServerProcess({
      ...env,
      ADMIN_TOKEN: 'aaaaaaaaaaaaaaaa',
      ALLOW_INSECURE_PRODUCTION: 'true',
    });
    try {
      const warnings = staging
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { level: number; msg: string; allowed?: string[] })
        .filter((line) => line.level === 40 && line.msg.startsWith('ALLOW_INSECURE_PRODUCTION=true'));
      expect(warnings).toHaveLength(2);
      expect(warnings[0]?.allowed).toEqual([expect.stringMatching(/^ADMIN_TOKEN: must be at least 32/)]);
      expect(warnings[1]?.msg).toMatch(/wwdr.pem is not Apple's WWDR intermediate/);
      expect(staging.output()).not.toContain('aaaaaaaaaaaaaaaa');
    } finally {
      staging.child.kill('SIGTERM');
      await staging.exited;
    }
  });
});
