import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { OVERRIDE_KEYS } from '../../../src/passes/pass-json-rules.js';
import { newPassBody, passChangeBody } from '../../../src/routes/admin/schemas.js';
import { startTestServer, type TestServer } from '../../support/server.js';

interface Operation {
  tags?: string[];
  summary?: string;
  security?: Array<Record<string, string[]>>;
  requestBody?: { content: Record<string, { schema: JsonSchema; examples?: Record<string, unknown> }> };
  responses: Record<string, unknown>;
}
interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: unknown;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, Record<string, string>>; schemas?: Record<string, unknown> };
}

let server: TestServer;
let document: Document;

beforeAll(async () => {
  server = await startTestServer();
  const response = await fetch(`${server.baseUrl}/docs/json`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  document = JSON.parse(await response.text()) as Document;
});
afterAll(async () => {
  await server?.close();
});

/** Every route Fastify serves, as "METHOD /path/{param}", read from printRoutes()' tree. */
function servedRoutes(tree: string): string[] {
  const routes: string[] = [];
  const parents: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)[├└]── (.*?) \(([^)]+)\)$/.exec(line);
    if (!match) continue;
    const [, indent = '', segment = '', methods = ''] = match;
    const depth = indent.length / 4;
    const path = (parents[depth - 1] ?? '') + segment;
    parents[depth] = path;
    for (const method of methods.split(', ')) {
      if (method !== 'HEAD') routes.push(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return routes;
}

function operation(method: string, path: string): Operation {
  const found = document.paths[path]?.[method];
  if (!found) throw new Error(`${method} ${path} is not in the document`);
  return found;
}

describe('/docs/json', () => {
  it('is an OpenAPI 3 document', () => {
    expect(document.openapi).toMatch(/^3\.\d+\.\d+$/);
  });

  it('lists every route the server serves, except the documentation itself', () => {
    const served = servedRoutes(server.app.printRoutes({ commonPrefix: false })).filter(
      (route) => !route.split(' ')[1]?.startsWith('/docs'),
    );
    expect(served.length).toBeGreaterThanOrEqual(17);
    const documented = Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual([...new Set(served)].sort());
  });

  it('tags and summarizes every operation, with the right security scheme', () => {
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        expect(op.summary, `${method} ${path}`).toEqual(expect.any(String));
        expect(['Admin', 'Wallet', 'Ops']).toContain(op.tags?.[0]);
        if (path.startsWith('/admin/')) expect(op.security).toEqual([{ adminToken: [] }]);
      }
    }
    expect(document.components.securitySchemes.adminToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(document.components.securitySchemes.applePass).toMatchObject({
      type: 'apiKey',
      in: 'header',
      name: 'Authorization',
    });
    const pass = '/v1/passes/{passTypeIdentifier}/{serialNumber}';
    expect(operation('get', pass).security).toEqual([{ applePass: [] }]);
    const registration =
      '/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}/{serialNumber}';
    expect(operation('post', registration).security).toEqual([{ applePass: [] }]);
    expect(operation('delete', registration).security).toEqual([{ applePass: [] }]);
    // Apple: the list of updatable passes and the log endpoint take no Authorization; `[]` says so.
    expect(
      operation('get', '/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}').security,
    ).toEqual([]);
    expect(operation('post', '/v1/log').security).toEqual([]);
  });

  it('describes POST /admin/passes with the fields newPassBody validates, and examples', () => {
    const body = operation('post', '/admin/passes').requestBody?.content['application/json'];
    expect(Object.keys(body?.schema.properties ?? {}).sort()).toEqual(Object.keys(newPassBody.shape).sort());
    expect(body?.schema.required).toEqual(['template']);
    expect(body?.schema.additionalProperties).toBe(false);
    const overrides = Object.keys(body?.schema.properties?.pass?.properties ?? {});
    expect(overrides).toEqual(expect.arrayContaining([...OVERRIDE_KEYS]));
    expect(Object.keys(body?.examples ?? {}).length).toBeGreaterThan(0);

    const change = operation('patch', '/admin/passes/{passTypeIdentifier}/{serialNumber}').requestBody
      ?.content['application/json'];
    expect(Object.keys(change?.schema.properties ?? {}).sort()).toEqual(
      Object.keys(passChangeBody.shape).sort(),
    );
    expect(operation('post', '/admin/passes').responses).toHaveProperty('201');
  });

  it('refers only to schemas it contains', () => {
    const text = JSON.stringify(document);
    const references = [...text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]);
    for (const name of new Set(references)) expect(document.components.schemas).toHaveProperty(String(name));
  });
});

describe('/docs', () => {
  it('answers a page for people', async () => {
    const response = await fetch(`${server.baseUrl}/docs`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await response.text()).toMatch(/swagger/i);
  });

  it('has a content security policy and frame protection, and loads only this server’s files', async () => {
    const page = await fetch(`${server.baseUrl}/docs/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const policy = new Map(
      (page.headers.get('content-security-policy') ?? '').split(';').map((directive) => {
        const [name = '', ...values] = directive.trim().split(/\s+/);
        return [name, values] as const;
      }),
    );
    expect(policy.get('default-src')).toEqual(["'none'"]);
    expect(policy.get('script-src')).toEqual(["'self'"]);
    // 'self' and the hash of one fixed block (the logo's); never 'unsafe-inline'.
    expect(policy.get('style-src')?.[0]).toBe("'self'");
    expect(policy.get('style-src')?.slice(1)).toEqual([expect.stringMatching(/^'sha256-[A-Za-z0-9+/]+=*'$/)]);
    expect(policy.get('frame-ancestors')).toEqual(["'none'"]);
    expect(policy.get('connect-src')).toEqual(["'self'", server.baseUrl]);

    // Every script and stylesheet is a file of this origin (no CDN: the page works in a closed network), served.
    const html = await page.text();
    const assets = [...html.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"/g)].map(
      (match) => new URL(match[1] as string, page.url),
    );
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>\s*\S/);
    expect(html).not.toMatch(/<style\b/);
    expect(assets.filter((url) => url.pathname.endsWith('.js')).length).toBeGreaterThanOrEqual(3);
    expect(assets.filter((url) => url.pathname.endsWith('.css')).length).toBeGreaterThanOrEqual(2);
    for (const url of assets) {
      expect(url.origin).toBe(server.baseUrl);
      const asset = await fetch(url);
      expect(asset.status, url.pathname).toBe(200);
      expect(asset.headers.get('content-security-policy')).toBe(page.headers.get('content-security-policy'));
      await asset.arrayBuffer();
    }
  });
});

describe('DOCS_ENABLED', () => {
  const production = {
    NODE_ENV: 'production',
    PUBLIC_URL: 'https://passes.example.com',
    ADMIN_TOKEN: 'Zq4-vN8r2Tx7Lm1pKd9sWb3yHc6jFg0e',
  };

  it('is on by default outside production, off in production, and either when set', () => {
    expect(loadConfig({}).docsEnabled).toBe(true);
    expect(loadConfig({ DOCS_ENABLED: 'false' }).docsEnabled).toBe(false);
    expect(loadConfig(production).docsEnabled).toBe(false);
    expect(loadConfig({ ...production, DOCS_ENABLED: 'true' }).docsEnabled).toBe(true);
    expect(() => loadConfig({ DOCS_ENABLED: 'yes please' })).toThrow(/DOCS_ENABLED: must be true or false/);
  });

  it('off: neither the page nor the document is served', async () => {
    const closed = await startTestServer({ docsEnabled: false });
    try {
      for (const path of ['/docs', '/docs/', '/docs/json', '/docs/static/swagger-ui-bundle.js']) {
        const response = await fetch(`${closed.baseUrl}${path}`);
        expect(response.status, path).toBe(404);
        expect(await response.json()).toMatchObject({ statusCode: 404, error: 'not_found' });
      }
      expect((await fetch(`${closed.baseUrl}/healthz`)).status).toBe(200);
    } finally {
      await closed.close();
    }
  });
});
