import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { adminToken, startTestServer, type TestServer } from '../support/server.js';

/*
 * The document is usable by a generator: openapi-typescript turns the live /docs/json into types, a client written
 * against them with openapi-fetch type-checks (and misuse does not), and it talks to the real app.
 */

let server: TestServer;
let dir: string;

beforeAll(async () => {
  server = await startTestServer();
  // Inside the project, so that the client resolves openapi-fetch from its node_modules (tmp/ is not committed).
  await mkdir(join(projectRoot, 'tmp'), { recursive: true });
  dir = await mkdtemp(join(projectRoot, 'tmp', 'openapi-client-'));
});
afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** What a client author writes against the generated types. */
const client = `import createClient from 'openapi-fetch';
import type { paths } from './api.js';

export async function run(baseUrl: string, adminToken: string) {
  const admin = createClient<paths>({ baseUrl, headers: { authorization: \`Bearer \${adminToken}\` } });
  const created = await admin.POST('/admin/passes', {
    body: { template: 'loyalty', serialNumber: 'client-1', fields: { points: 120 } },
  });
  if (!created.data) throw new Error(\`create: \${created.response.status}\`);
  const { passTypeIdentifier, serialNumber } = created.data;
  const path = { passTypeIdentifier, serialNumber };
  const changed = await admin.PATCH('/admin/passes/{passTypeIdentifier}/{serialNumber}', {
    params: { path },
    body: { fields: { points: 150 } },
  });
  const version: number | undefined = changed.data?.version;
  const page = await admin.GET('/admin/passes', { params: { query: { limit: 10 } } });
  const cursor: string | null | undefined = page.data?.nextCursor;
  const missing = await admin.GET('/admin/passes/{passTypeIdentifier}/{serialNumber}', {
    params: { path: { passTypeIdentifier, serialNumber: 'no-such-pass' } },
  });
  const wallet = createClient<paths>({ baseUrl });
  const updatable = await wallet.GET(
    '/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}',
    { params: { path: { deviceLibraryIdentifier: 'device-1', passTypeIdentifier }, query: {} } },
  );
  const health = await wallet.GET('/healthz');
  const status: 'ok' | undefined = health.data?.status;
  return {
    created: created.response.status,
    serialNumber,
    version,
    listed: page.data?.passes.map((pass) => pass.serialNumber),
    cursor,
    missing: { status: missing.response.status, error: missing.error?.error },
    updatable: updatable.response.status,
    requestId: health.response.headers.get('x-request-id'),
    status,
  };
}
`;

/** Misuse the types must refuse: each line is an error, or tsc reports the unused directive. */
const misuse = `import createClient from 'openapi-fetch';
import type { paths } from './api.js';

const admin = createClient<paths>({ baseUrl: 'http://127.0.0.1' });
// @ts-expect-error template is required
await admin.POST('/admin/passes', { body: { fields: {} } });
// @ts-expect-error no such route
await admin.GET('/admin/nothing');
// @ts-expect-error limit is a number
await admin.GET('/admin/passes', { params: { query: { limit: 'ten' } } });
const pass = await admin.GET('/admin/passes/{passTypeIdentifier}/{serialNumber}', {
  params: { path: { passTypeIdentifier: 'a', serialNumber: 'b' } },
});
// @ts-expect-error version is a number
const version: string | undefined = pass.data?.version;
export { version };
`;

/** JSON as TypeScript writes it: a recursive alias, which TypeScript allows where indexed access is refused. */
const jsonValue = ts.factory.createTypeReferenceNode('JsonValue');
const jsonValueAlias = `type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
`;

function typeErrors(files: string[]): string[] {
  const program = ts.createProgram(files, {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
    types: [],
  });
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
}

describe('a client generated from /docs/json', () => {
  it('type-checks, refuses misuse, and calls the real app', async () => {
    const types = astToString(
      await openapiTS(new URL(`${server.baseUrl}/docs/json`), {
        // openapi-typescript writes a self-referencing anyOf with an array branch (any JSON value: userInfo,
        // semantics) as a type TypeScript refuses as circular (openapi-typescript issue #1603); its documented
        // transform option names it here, as what it is: any JSON value.
        transform: (_schema, { path }) =>
          /^#\/components\/schemas\/JsonValue/.test(path ?? '') ? jsonValue : undefined,
      }),
    );
    expect(types).toContain('"/admin/passes/bulk"');
    await writeFile(join(dir, 'api.ts'), `${jsonValueAlias}${types}`);
    await writeFile(join(dir, 'client.ts'), client);
    await writeFile(join(dir, 'misuse.ts'), misuse);
    expect(typeErrors([join(dir, 'client.ts'), join(dir, 'misuse.ts')])).toEqual([]);

    const { run } = (await import(join(dir, 'client.ts'))) as {
      run(baseUrl: string, token: string): Promise<Record<string, unknown>>;
    };
    const answers = await run(server.baseUrl, adminToken);
    expect(answers).toMatchObject({
      created: 201,
      serialNumber: 'client-1',
      version: 2,
      listed: ['client-1'],
      cursor: null,
      missing: { status: 404, error: 'not_found' },
      updatable: 204,
      status: 'ok',
    });
    expect(answers.requestId).toEqual(expect.any(String));
  });
});
