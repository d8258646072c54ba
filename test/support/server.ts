import { join } from 'node:path';
import pino from 'pino';
import { type App, type AppDeps, buildApp } from '../../src/app.js';
import type { Clock } from '../../src/clock.js';
import type { RateLimitSettings } from '../../src/config.js';
import type { Database } from '../../src/db/database.js';
import type { TemplateCatalog } from '../../src/passes/template-catalog.js';
import { loadTemplates } from '../../src/passes/templates.js';
import { projectRoot } from '../../src/paths.js';
import type { Identities } from '../../src/signing/identities.js';
import { loadSigningIdentity, type SigningIdentity } from '../../src/signing/identity.js';
import { createSigner, type Signer } from '../../src/signing/signer.js';
import { testTemplateCatalog } from './catalog.js';
import { openTestDatabase } from './database.js';
import { loadTestIdentities } from './identities.js';
import { createTestPki, type TestPki } from './pki.js';
import { freePort } from './process.js';

export const adminToken = 'test-admin-token-0123456789abcdef';

export interface TestServer {
  baseUrl: string;
  app: App;
  database: Database;
  pki: TestPki;
  /** The configured identity (the test PKI's). */
  identity: SigningIdentity;
  /** It and those added through the API. */
  identities: Identities;
  /** The server's signer (src/signing/signer.ts), closed with it. */
  signer: Signer;
  /** The shipped templates and those uploaded through the API. */
  templates: TemplateCatalog;
  /** Calls the admin API with the admin token; JSON in, parsed JSON out. */
  admin(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

let sharedPki: Promise<TestPki> | undefined;

const unreachedLimits: RateLimitSettings = {
  perMinute: 100_000,
  perDevicePerMinute: 100_000,
  perPassPerMinute: 100_000,
  authFailuresPerMinute: 10_000,
};

/** The server as `npm start` builds it, on the test database, with the test PKI and the shipped templates. */
export async function startTestServer(
  options: {
    clock?: Clock;
    modelsDir?: string;
    /** A database the caller opened (e.g. through a TCP proxy); closed with the server. */
    database?: Database;
    /** The app's logger (silent otherwise). */
    log?: AppDeps['log'];
    /** Metrics, readiness parts (src/ops/ops.ts). */
    ops?: AppDeps['ops'];
    /** Request and failed-authentication limits; unset ones far above what any suite sends from 127.0.0.1 (test/plugins/limits.test.ts uses real ones). */
    rateLimits?: Partial<RateLimitSettings>;
    /** TRUST_PROXY; unset, off as in production. */
    trustProxy?: AppDeps['trustProxy'];
    /** DOCS_ENABLED; unset, on as in development. */
    docsEnabled?: AppDeps['docsEnabled'];
    /** POST /v1/log's limit per address; unset, far above what any suite sends (as rateLimits). */
    deviceLogRequestsPerMinute?: number;
    /** The HTTP server's timeouts and connection cap; unset, the production defaults. */
    connections?: AppDeps['connections'];
    /** IDENTITY_ENCRYPTION_KEY; unset, a fixed test key (undefined: none, so no identity can be added). */
    identityEncryptionKey?: Buffer | undefined;
    /** How often stored identities are re-read (another instance's changes). */
    identityRefreshMs?: number;
  } = {},
): Promise<TestServer> {
  sharedPki ??= createTestPki();
  const pki = await sharedPki;
  const log = options.log ?? pino({ level: 'silent' });
  const identity = await loadSigningIdentity({
    certificatesDir: pki.certificatesDir,
    dataDir: pki.dir,
    production: false,
    log,
  });
  const { templates } = await loadTemplates(options.modelsDir ?? join(projectRoot, 'models'));
  const database = options.database ?? (await openTestDatabase());
  const clock = options.clock ?? { now: () => new Date() };
  const identities = await loadTestIdentities(identity, database.repositories, {
    clock,
    log,
    ...('identityEncryptionKey' in options ? { encryptionKey: options.identityEncryptionKey } : {}),
    ...(options.identityRefreshMs ? { refreshIntervalMs: options.identityRefreshMs } : {}),
  });
  const catalog = testTemplateCatalog(templates, database.repositories, identities, clock);
  const signer = createSigner();
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const app = await buildApp({
    database,
    repositories: database.repositories,
    templates: catalog,
    identities,
    signer,
    clock,
    webServiceURL: baseUrl,
    log,
    adminToken,
    publicUrl: baseUrl,
    downloadLinkTtlSeconds: 3600,
    rateLimits: { ...unreachedLimits, ...options.rateLimits },
    trustProxy: options.trustProxy ?? false,
    ...(options.docsEnabled === undefined ? {} : { docsEnabled: options.docsEnabled }),
    deviceLogRequestsPerMinute: options.deviceLogRequestsPerMinute ?? 100_000,
    ...(options.connections ? { connections: options.connections } : {}),
    ...(options.ops ? { ops: options.ops } : {}),
  });
  await app.listen({ port, host: '127.0.0.1' });
  return {
    baseUrl,
    app,
    database,
    pki,
    identity,
    identities,
    signer,
    templates: catalog,
    async admin(method, path, body) {
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${adminToken}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    },
    async close() {
      await app.close();
      identities.close();
      await signer.close();
      await database.close();
    },
  };
}
