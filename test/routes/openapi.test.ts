import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../src/cli/openapi.js';
import { changeMessagesSchema, passOverridesSchema } from '../../src/passes/pass-content.js';
import { listPassesQuery } from '../../src/routes/admin/schemas.js';
import { identifier, updatableQuery } from '../../src/routes/wallet/schemas.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { createPass } from './wallet/pass-fixtures.js';

/*
 * The OpenAPI document (/docs/json) against the server it describes: portable patterns that accept what the zod
 * schemas accept, the formats the server enforces, every answer and header that can happen, and examples the server
 * takes as they are.
 */

interface Schema {
  type?: string;
  pattern?: string;
  maxLength?: number;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  anyOf?: Schema[];
  [key: string]: unknown;
}
interface Answer {
  description: string;
  headers?: Record<string, { schema: Schema; description?: string }>;
  content?: Record<string, { schema: Schema }>;
}
interface Operation {
  operationId?: string;
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ in: string; name: string; schema: Schema }>;
  requestBody?: {
    content: Record<string, { schema: Schema; examples?: Record<string, { value: unknown }> }>;
  };
  responses: Record<string, Answer>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

let server: TestServer;
let document: Document;

beforeAll(async () => {
  server = await startTestServer();
  document = (await (await fetch(`${server.baseUrl}/docs/json`)).json()) as Document;
});
afterAll(async () => {
  await server?.close();
});

const operations = () =>
  Object.entries(document.paths).flatMap(([path, byMethod]) =>
    Object.entries(byMethod).map(([method, operation]) => ({ method, path, operation })),
  );

function operation(method: string, path: string): Operation {
  const found = document.paths[path]?.[method];
  if (!found) throw new Error(`${method} ${path} is not in the document`);
  return found;
}

const jsonBody = (op: Operation) => {
  const body = op.requestBody?.content['application/json'];
  if (!body) throw new Error('no JSON body');
  return body;
};

function parameter(op: Operation, name: string): Schema {
  const found = op.parameters?.find((p) => p.name === name);
  if (!found) throw new Error(`no parameter ${name}`);
  return found.schema;
}

/** Every value of `key` anywhere in the document. */
function collect(value: unknown, key: string, found: unknown[] = []): unknown[] {
  if (Array.isArray(value)) for (const item of value) collect(item, key, found);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === key) found.push(v);
      collect(v, key, found);
    }
  }
  return found;
}

/** A JSON Schema pattern as ECMA-262 reads it: no flags (JSON Schema patterns have none). */
const documented = (pattern: string | undefined) => {
  if (pattern === undefined) throw new Error('no pattern');
  return new RegExp(pattern);
};

const passPath = '/v1/passes/{passTypeIdentifier}/{serialNumber}';
const updatablePath = '/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}';
const overridesOf = (op: Operation) => jsonBody(op).schema.properties?.pass?.properties ?? {};

describe('patterns', () => {
  it('are portable: no \\p{…} classes or u-flag syntax, and they mean the same with and without the u flag', () => {
    const patterns = collect(document, 'pattern').filter((p): p is string => typeof p === 'string');
    expect(patterns.length).toBeGreaterThan(5);
    for (const pattern of patterns) {
      expect(pattern, pattern).not.toMatch(/\\[pP]\{|\\u\{|\(\?<[=!]?[A-Za-z]/);
      expect(() => new RegExp(pattern), pattern).not.toThrow();
      expect(() => new RegExp(pattern, 'u'), pattern).not.toThrow();
    }
  });

  it("accepts exactly the identifiers the server's zod schema accepts: no '/' and no Unicode control character", () => {
    const pattern = documented(parameter(operation('get', passPath), 'serialNumber').pattern);
    const schema = identifier('serialNumber');
    // Unicode's Cc (general category Control), the rule the server always had.
    const unicodeRule = /^[^/\p{Cc}]+$/u;
    const samples = [
      ...Array.from({ length: 0x180 }, (_, code) => `a${String.fromCharCode(code)}b`),
      'pass.com.example.event',
      'E5982H-I2',
      'a/b',
      '\u2028',
      '\u200b',
      '\ufeff',
      '😀',
      'ü',
      '\u0000',
    ];
    for (const sample of samples) {
      const server = schema.safeParse(sample).success;
      expect(pattern.test(sample), JSON.stringify(sample)).toBe(server);
      expect(unicodeRule.test(sample), JSON.stringify(sample)).toBe(server);
    }
    // A lone surrogate is not text (no UTF-8 form: no client outside JavaScript can even send one), so the pattern
    // leaves it to the server's storable-text rule, which refuses it.
    for (const lone of ['a\ud800b', '\udfff']) {
      expect(pattern.test(lone), JSON.stringify(lone)).toBe(true);
      expect(schema.safeParse(lone).success, JSON.stringify(lone)).toBe(false);
    }
  });

  it('says what the server accepts as rgb() colours', () => {
    const pattern = documented(overridesOf(operation('post', '/admin/passes')).backgroundColor?.pattern);
    const channels = Array.from({ length: 300 }, (_, n) => String(n));
    const samples = [
      ...channels.map((n) => `rgb(${n}, 0, 0)`),
      ...channels.map((n) => `rgb(0,0,${n})`),
      'rgb(001,002,003)',
      'rgb(0255,0,0)',
      'rgb( 1 , 2 , 3 )',
      'rgb(\u00a01,2,3\u2003)',
      'rgb(1,2)',
      'rgb(1,2,3) ',
      ' rgb(1,2,3)',
      'RGB(1,2,3)',
      'rgba(1,2,3,1)',
      '#17bb52',
      'rgb(-1,0,0)',
      'rgb(1.5,0,0)',
    ];
    for (const sample of samples) {
      const server = passOverridesSchema.safeParse({ backgroundColor: sample }).success;
      expect(pattern.test(sample), sample).toBe(server);
    }
  });

  it('says that a change message must contain %@', () => {
    const change = jsonBody(operation('patch', '/admin/passes/{passTypeIdentifier}/{serialNumber}'));
    const messages = change.schema.properties?.changeMessages?.additionalProperties;
    const pattern = documented(typeof messages === 'object' ? messages.pattern : undefined);
    for (const sample of ['Gate %@', '%@', 'now %@ and %@', 'Gate changed', '% @', '@%', '%%']) {
      const server = changeMessagesSchema.safeParse({ gate: sample }).success;
      expect(pattern.test(sample), sample).toBe(server);
    }
  });

  it('gives the form of dates: every date the server accepts matches, the wrong shapes do not', () => {
    const pattern = documented(overridesOf(operation('post', '/admin/passes')).expirationDate?.pattern);
    const accepted = ['2026-07-22T14:25-08:00', '2026-07-22T14:25:00Z', '2026-07-22T14:25:00.123+02:00'];
    const refused = [
      '2026-07-22',
      '2026-07-22T14:25:00',
      '2026-07-22 14:25Z',
      'tomorrow',
      '2026-07-22T14:25:00+0200',
    ];
    for (const sample of accepted) {
      expect(passOverridesSchema.safeParse({ expirationDate: sample }).success, sample).toBe(true);
      expect(pattern.test(sample), sample).toBe(true);
    }
    for (const sample of refused) {
      expect(passOverridesSchema.safeParse({ expirationDate: sample }).success, sample).toBe(false);
      expect(pattern.test(sample), sample).toBe(false);
    }
  });

  it('gives the form of lastUpdated tags, and the tags the server hands out match it', async () => {
    const query = parameter(operation('get', updatablePath), 'passesUpdatedSince');
    const pattern = documented(query.pattern);
    expect(query.maxLength).toBeGreaterThan(0);
    const tag = (sample: string) => updatableQuery.safeParse({ passesUpdatedSince: sample }).success;
    for (const sample of ['', '5:9:', '5:9:5,7', '1:1:', '18446744073709551615:18446744073709551615:']) {
      expect(tag(sample), sample).toBe(true);
      expect(pattern.test(sample), sample).toBe(true);
    }
    for (const sample of ['5', '5:9', 'a:b:', '5:9:7,', ' 5:9:', '5:9:\n', '٥:٩:']) {
      expect(tag(sample), sample).toBe(false);
      expect(pattern.test(sample), sample).toBe(false);
    }
    // The answer's lastUpdated is documented with the same form, and a real one matches it.
    const answer = operation('get', updatablePath).responses['200']?.content?.['application/json']?.schema;
    expect(answer?.properties?.lastUpdated?.pattern).toBe(query.pattern);
    const pass = await createPass(server);
    const device = `${server.baseUrl}/v1/devices/device-tag/registrations/${pass.passTypeIdentifier}`;
    const registered = await fetch(`${device}/${pass.serialNumber}`, {
      method: 'POST',
      headers: { authorization: `ApplePass ${pass.authenticationToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ pushToken: 'ab'.repeat(32) }),
    });
    expect(registered.status).toBe(201);
    const listed = (await (await fetch(device)).json()) as { lastUpdated: string };
    expect(pattern.test(listed.lastUpdated), listed.lastUpdated).toBe(true);
    expect(tag(listed.lastUpdated)).toBe(true);
  });

  it('gives the form of page cursors: the ones the server writes match it, and it takes every one that matches', async () => {
    const pattern = documented(parameter(operation('get', '/admin/passes'), 'cursor').pattern);
    for (const serialNumber of ['cursor-1', 'cursor-2', 'cursor-3']) {
      expect(
        (await server.admin('POST', '/admin/passes', { template: 'loyalty', serialNumber })).status,
      ).toBe(201);
    }
    const page = await server.admin('GET', '/admin/passes?limit=1');
    const written = String(page.body.nextCursor);
    expect(pattern.test(written), written).toBe(true);
    // Cursors of ids of every documented length (1-18 digits).
    const ids = ['1', '9', '10', '99', '100', '842', '1000', '123456789', '999999999999999999'];
    for (const id of ids) {
      const cursor = Buffer.from(id).toString('base64url');
      expect(pattern.test(cursor), `${id}: ${cursor}`).toBe(true);
      expect(listPassesQuery.safeParse({ cursor }).success).toBe(true);
      const listed = await server.admin('GET', `/admin/passes?limit=1&cursor=${cursor}`);
      expect(listed.status, `${id}: ${cursor}`).toBe(200);
    }
    for (const cursor of ['abc', 'MQ==', 'eA', Buffer.from('12a').toString('base64url'), 'Oz']) {
      expect(pattern.test(cursor), cursor).toBe(false);
    }
    const longest = parameter(operation('get', '/admin/passes'), 'cursor').maxLength;
    expect(Buffer.from('999999999999999999').toString('base64url').length).toBe(longest);
    expect(Buffer.from('1000000000000000000').toString('base64url').length).toBeGreaterThan(Number(longest));
    expect((await server.admin('GET', '/admin/passes?cursor=abc')).status).toBe(400);
  });
});

describe('answers and headers', () => {
  it('gives every operation a unique operationId and an explicit security requirement', () => {
    const ids = operations().map(({ operation }) => operation.operationId);
    expect(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { method, path, operation } of operations()) {
      expect(Array.isArray(operation.security), `${method} ${path}`).toBe(true);
    }
    expect(operation('post', '/v1/log').security).toEqual([]);
    expect(operation('get', updatablePath).security).toEqual([]);
    expect(operation('get', '/download/{passTypeIdentifier}/{serialNumber}').security).toEqual([]);
    expect(operation('get', '/healthz').security).toEqual([]);
  });

  it('declares 503 everywhere, 429 where requests are limited, 413 and 415 where a body is taken', () => {
    for (const { method, path, operation } of operations()) {
      const codes = Object.keys(operation.responses);
      const where = `${method} ${path}`;
      expect(codes, where).toContain('503');
      if (/^\/(v1|admin|download)\//.test(path)) expect(codes, where).toContain('429');
      if (operation.requestBody) expect(codes, where).toEqual(expect.arrayContaining(['413', '415']));
    }
  });

  it('describes every answer (no "Default Response") with x-request-id, and Retry-After on 429 and 503', () => {
    for (const { method, path, operation } of operations()) {
      for (const [code, answer] of Object.entries(operation.responses)) {
        const where = `${method} ${path} ${code}`;
        expect(answer.description, where).not.toBe('Default Response');
        expect(answer.headers?.['x-request-id']?.schema.type, where).toBe('string');
        if (code === '429' || code === '503')
          expect(answer.headers?.['retry-after']?.schema.type).toBe('integer');
      }
    }
    const download = operation('get', passPath).responses;
    expect(download['200']?.headers?.['last-modified']).toBeDefined();
    expect(download['304']?.headers?.['last-modified']).toBeDefined();
    expect(Object.keys(download['200']?.content ?? {})).toEqual(['application/vnd.apple.pkpass']);
    const adminDownload = operation('get', '/admin/passes/{passTypeIdentifier}/{serialNumber}/pkpass');
    expect(adminDownload.responses['200']?.headers?.['last-modified']).toBeDefined();
    expect(operation('post', '/admin/passes/bulk').responses['202']?.headers?.location).toBeDefined();
  });

  it('describes the ops answers: health, readiness (200 and 503) and the metrics text', async () => {
    const health = operation('get', '/healthz').responses['200']?.content?.['application/json']?.schema;
    expect(health?.properties?.status).toMatchObject({ enum: ['ok'] });
    const readiness = operation('get', '/readyz').responses;
    expect(readiness['200']?.content?.['application/json']?.schema.properties?.status).toMatchObject({
      enum: ['ready'],
    });
    expect(readiness['503']?.content?.['application/json']?.schema.properties?.failing?.type).toBe('array');
    expect(Object.keys(operation('get', '/metrics').responses['200']?.content ?? {})).toEqual(['text/plain']);
    // The answers are what the document says.
    expect(await (await fetch(`${server.baseUrl}/healthz`)).json()).toEqual({ status: 'ok' });
    const metrics = await fetch(`${server.baseUrl}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await metrics.text()).toMatch(/^# HELP /);
  });

  it('writes no nullable (OpenAPI 3.1: null is a type)', () => {
    expect(document.openapi).toBe('3.1.0');
    expect(collect(document, 'nullable')).toEqual([]);
  });
});

describe('examples', () => {
  it('are all taken by the server as they are: none gets 400', async () => {
    const passType = server.identity.passTypeIdentifier;
    // JSON bodies: a pass image's PNG body has no examples.
    const bodies = operations().filter(({ operation }) => operation.requestBody?.content['application/json']);
    // Creations first: the changes' examples change the pass that the ticket example makes.
    const order = (method: string) => (method === 'post' ? 0 : 1);
    bodies.sort((a, b) => order(a.method) - order(b.method) || a.path.localeCompare(b.path));
    let sent = 0;
    for (const { method, path, operation } of bodies) {
      const url = path.replace('{passTypeIdentifier}', passType).replace('{serialNumber}', 'ticket-0001');
      for (const [name, example] of Object.entries(jsonBody(operation).examples ?? {})) {
        const answer = await server.admin(method.toUpperCase(), url, example.value);
        expect(
          answer.status,
          `${method} ${path} example ${name}: ${JSON.stringify(answer.body)}`,
        ).toBeLessThan(300);
        sent++;
      }
    }
    expect(sent).toBeGreaterThanOrEqual(5);
  });

  it('put no named examples into a schema, where they would read as its value', () => {
    for (const { method, path, operation } of operations()) {
      if (operation.requestBody?.content['application/json'])
        expect(collect(jsonBody(operation).schema, 'example'), `${method} ${path}`).toEqual([]);
    }
  });
});

describe('passkit-server openapi', () => {
  it('prints the very document /docs/json serves', async () => {
    expect(await openApiDocument(server.baseUrl)).toEqual(document);
  });
});
