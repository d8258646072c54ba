import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxJsonDepth } from '../../src/passes/pass-content.js';
import { adminToken, startTestServer, type TestServer } from '../support/server.js';

/*
 * Issue 14, section 5: odd bytes and shapes are client errors. Each case is a 400 (a 414 for an over-long path
 * segment) with the documented {statusCode, error, message} body naming the field, never a 500; run on the
 * embedded database and, with TEST_DATABASE_URL, on PostgreSQL.
 */

let server: TestServer;
let pass: { passTypeIdentifier: string; serialNumber: string };
let authorization: string;

beforeAll(async () => {
  server = await startTestServer();
  const created = await server.admin('POST', '/admin/passes', { template: 'loyalty', serialNumber: 'odd-1' });
  expect(created.status).toBe(201);
  pass = created.body as typeof pass;
  const stored = await server.database.prisma.pass.findFirstOrThrow({ where: { serialNumber: 'odd-1' } });
  authorization = `ApplePass ${stored.authenticationToken}`;
});
afterAll(async () => {
  await server?.close();
});

interface Case {
  name: string;
  method: string;
  path: () => string;
  /** The JSON text as sent: `\u0000` and `\ud800` stay escapes, as a client writes them. */
  body?: string;
  headers?: () => Record<string, string>;
  status?: number;
  /** What the message must name: the field, with its path. */
  names: RegExp;
}

const nul = String.raw`a\u0000b`;
const surrogate = String.raw`\ud800`;
const passPath = () => `/admin/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`;
const admin = () => ({ authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' });
const create = (rest: string) => `{"template":"loyalty",${rest}}`;
const deep = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

const cases: Case[] = [
  {
    name: 'U+0000 in a device log',
    method: 'POST',
    path: () => '/v1/log',
    headers: () => ({ 'content-type': 'application/json' }),
    body: `{"logs":["${nul}"]}`,
    names: /body\.logs\.0: .*U\+0000/,
  },
  {
    name: 'U+0000 in a field value',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"fields":{"tier":"${nul}"}`),
    names: /body\.fields\.tier: .*U\+0000/,
  },
  {
    name: 'U+0000 in pass.description',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"pass":{"description":"${nul}"}`),
    names: /body\.pass\.description: .*U\+0000/,
  },
  {
    name: 'U+0000 in a barcode message',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"pass":{"barcodes":[{"format":"PKBarcodeFormatQR","message":"${nul}"}]}`),
    names: /body\.pass\.barcodes\.0\.message: .*U\+0000/,
  },
  {
    name: 'U+0000 in a userInfo key',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"pass":{"userInfo":{"${nul}":1}}`),
    names: /body\.pass\.userInfo.*U\+0000/,
  },
  {
    name: 'U+0000 in a nested userInfo value',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"pass":{"userInfo":{"member":{"notes":["${nul}"]}}}`),
    names: /body\.pass\.userInfo\.member\.notes\.0: .*U\+0000/,
  },
  {
    name: 'U+0000 in a change message',
    method: 'PATCH',
    path: passPath,
    body: `{"changeMessages":{"tier":"Now %@${nul}"}}`,
    names: /body\.changeMessages\.tier: .*U\+0000/,
  },
  {
    name: 'U+0000 in a bulk selection',
    method: 'POST',
    path: () => '/admin/passes/bulk',
    body: `{"select":{"template":"loyalty","fields":{"tier":"${nul}"}},"change":{"fields":{"tier":"Gold"}}}`,
    names: /body\.select\.fields\.tier: .*U\+0000/,
  },
  {
    name: 'U+0000 in a bulk selection template',
    method: 'POST',
    path: () => '/admin/passes/bulk',
    body: `{"select":{"template":"${nul}"},"change":{"fields":{"tier":"Gold"}}}`,
    names: /body\.select\.template: .*U\+0000/,
  },
  {
    name: 'U+0000 in a bulk change',
    method: 'POST',
    path: () => '/admin/passes/bulk',
    body: `{"select":{"template":"loyalty"},"change":{"fields":{"tier":"${nul}"}}}`,
    names: /body\.change\.fields\.tier: .*U\+0000/,
  },
  {
    name: 'U+0000 in the template query',
    method: 'GET',
    path: () => '/admin/passes?template=a%00b',
    names: /querystring\.template: .*U\+0000/,
  },
  {
    name: 'a lone surrogate in a field value on create',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"fields":{"tier":"${surrogate}"}`),
    names: /body\.fields\.tier: .*surrogate/,
  },
  {
    name: 'a lone surrogate in a field value on change',
    method: 'PATCH',
    path: passPath,
    body: `{"fields":{"tier":"Gold ${surrogate}"}}`,
    names: /body\.fields\.tier: .*surrogate/,
  },
  {
    name: 'a lone surrogate in a serial number',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"serialNumber":"odd-${surrogate}"`),
    names: /body\.serialNumber: .*surrogate/,
  },
  {
    name: 'a lone surrogate in a userInfo key',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"pass":{"userInfo":{"${surrogate}":1}}`),
    names: /body\.pass\.userInfo.*surrogate/,
  },
  {
    name: '2,000 levels of nesting in userInfo',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"pass":{"userInfo":${deep(2000)}}`),
    names: new RegExp(`body\\.pass\\.userInfo: .*${maxJsonDepth} levels`),
  },
  {
    name: '2,000 levels of nesting in semantics, on change',
    method: 'PATCH',
    path: passPath,
    body: `{"pass":{"semantics":${deep(2000)}}}`,
    names: new RegExp(`body\\.pass\\.semantics: .*${maxJsonDepth} levels`),
  },
  {
    name: '2,000 levels of nesting in a bulk change',
    method: 'POST',
    path: () => '/admin/passes/bulk',
    body: `{"select":{"template":"loyalty"},"change":{"pass":{"userInfo":${deep(2000)}}}}`,
    names: /body\.change\.pass\.userInfo: /,
  },
  {
    name: 'a semantics value the signer (passkit-generator) refuses',
    method: 'POST',
    path: () => '/admin/passes',
    body: create(`"pass":{"semantics":{"totalPrice":"12 EUR"}}`),
    names: /pass\.json semantics: refused by the signer .*"semantics\.totalPrice" must be of type object/,
  },
  {
    name: 'passesUpdatedSince with an xmax past 32 bits',
    method: 'GET',
    path: () => `/v1/devices/d/registrations/${pass.passTypeIdentifier}?passesUpdatedSince=1:4294967296:`,
    names: /querystring\.passesUpdatedSince: /,
  },
  {
    name: 'passesUpdatedSince with an xmin whose xid within its epoch is 0',
    method: 'GET',
    path: () =>
      `/v1/devices/d/registrations/${pass.passTypeIdentifier}?passesUpdatedSince=4294967296:4294967297:`,
    names: /querystring\.passesUpdatedSince: /,
  },
  {
    name: 'an invalid percent-encoding in the path',
    method: 'GET',
    path: () => `/v1/passes/${pass.passTypeIdentifier}/%FF%FE`,
    headers: () => ({ authorization }),
    names: /path: .*percent-encod/,
  },
  {
    name: 'a path segment over the router limit',
    method: 'GET',
    path: () => `/v1/passes/${pass.passTypeIdentifier}/${'s'.repeat(1100)}`,
    headers: () => ({ authorization }),
    status: 414,
    names: /path: .*1024 characters/,
  },
];

describe('odd bytes and shapes are 4xx answers naming the field', () => {
  it.each(cases)('$name', async (test) => {
    const response = await fetch(`${server.baseUrl}${test.path()}`, {
      method: test.method,
      headers: test.headers?.() ?? admin(),
      body: test.body,
    });
    const status = test.status ?? 400;
    const text = await response.text();
    expect(response.status, text).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    // The router's own answers (bad percent-encoding, an over-long segment) too: no hook runs for them.
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const body = JSON.parse(text) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['error', 'message', 'statusCode']);
    expect(body.statusCode).toBe(status);
    expect(body.error).toBe(status === 400 ? 'invalid' : 'uri_too_long');
    expect(body.message).toMatch(test.names);
  });

  it('still takes nesting up to the limit and well-formed text beyond the BMP', async () => {
    const userInfo = JSON.parse(deep(maxJsonDepth)) as Record<string, unknown>;
    const created = await server.admin('POST', '/admin/passes', {
      template: 'loyalty',
      fields: { tier: 'Gold 🥇' },
      pass: { userInfo },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.fields).toEqual({ tier: 'Gold 🥇' });
    expect((created.body.pass as Record<string, unknown>).userInfo).toEqual(userInfo);
    const tooDeep = await server.admin('POST', '/admin/passes', {
      template: 'loyalty',
      pass: { userInfo: JSON.parse(deep(maxJsonDepth + 1)) },
    });
    expect(tooDeep.status).toBe(400);
  });

  it('keeps serving afterwards', async () => {
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
    expect((await server.admin('GET', passPath())).status).toBe(200);
  });
});
