import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, startTestServer, type TestServer } from '../../support/server.js';

let server: TestServer;
let pass: { passTypeIdentifier: string; serialNumber: string };
let authorization: string;

beforeAll(async () => {
  server = await startTestServer();
  const created = await server.admin('POST', '/admin/passes', {
    template: 'loyalty',
    serialNumber: 'bad-input-1',
  });
  pass = created.body as typeof pass;
  const stored = await server.database.prisma.pass.findFirstOrThrow({
    where: { serialNumber: 'bad-input-1' },
  });
  authorization = `ApplePass ${stored.authenticationToken}`;
});
afterAll(async () => {
  await server?.close();
});

interface Case {
  name: string;
  method: string;
  path: () => string;
  headers?: () => Record<string, string>;
  body?: string;
  status: number;
  message?: RegExp;
}

const json = { 'content-type': 'application/json' };
const registration =
  (device = 'device-1', type = () => pass.passTypeIdentifier, serial = () => pass.serialNumber) =>
  () =>
    `/v1/devices/${device}/registrations/${type()}/${serial()}`;
const wallet = () => ({ ...json, authorization });
const admin = () => ({ ...json, authorization: `Bearer ${adminToken}` });
const pushToken = JSON.stringify({ pushToken: 'ab'.repeat(32) });
const long = 'x'.repeat(257);

const cases: Case[] = [
  {
    name: 'malformed JSON',
    method: 'POST',
    path: registration(),
    headers: wallet,
    body: '{"pushToken":',
    status: 400,
  },
  {
    name: 'wrong content type',
    method: 'POST',
    path: registration(),
    headers: () => ({ authorization, 'content-type': 'text/plain' }),
    body: pushToken,
    status: 415,
  },
  {
    name: 'body over the limit',
    method: 'POST',
    path: registration(),
    headers: wallet,
    body: JSON.stringify({ pushToken: 'a'.repeat(40_000) }),
    status: 413,
  },
  {
    name: 'missing pushToken',
    method: 'POST',
    path: registration(),
    headers: wallet,
    body: '{}',
    status: 400,
    message: /pushToken/,
  },
  {
    name: 'extra field',
    method: 'POST',
    path: registration(),
    headers: wallet,
    body: JSON.stringify({ pushToken: 'ab'.repeat(32), extra: 1 }),
    status: 400,
    message: /extra/,
  },
  {
    name: 'pushToken not a token',
    method: 'POST',
    path: registration(),
    headers: wallet,
    body: JSON.stringify({ pushToken: 'not hex!' }),
    status: 400,
    message: /pushToken/,
  },
  { name: 'empty body', method: 'POST', path: registration(), headers: wallet, body: '', status: 400 },
  {
    name: 'device id over 256 characters',
    method: 'POST',
    path: registration(long),
    headers: wallet,
    body: pushToken,
    status: 400,
    message: /deviceLibraryIdentifier/,
  },
  {
    name: 'device id with %2F',
    method: 'POST',
    path: registration('a%2Fb'),
    headers: wallet,
    body: pushToken,
    status: 400,
    message: /deviceLibraryIdentifier/,
  },
  {
    name: 'device id with a control character',
    method: 'POST',
    path: registration('a%01b'),
    headers: wallet,
    body: pushToken,
    status: 400,
    message: /deviceLibraryIdentifier/,
  },
  {
    name: 'serial with %2F',
    method: 'GET',
    path: () => `/v1/passes/${pass.passTypeIdentifier}/a%2Fb`,
    headers: wallet,
    status: 400,
    message: /serialNumber/,
  },
  {
    name: 'serial over 256 characters',
    method: 'GET',
    path: () => `/v1/passes/${pass.passTypeIdentifier}/${long}`,
    headers: wallet,
    status: 400,
    message: /serialNumber/,
  },
  {
    name: 'empty serial',
    method: 'GET',
    path: () => `/v1/passes/${pass.passTypeIdentifier}/`,
    headers: wallet,
    status: 400,
    message: /serialNumber/,
  },
  {
    name: 'unknown pass on register',
    method: 'POST',
    path: registration('device-1', undefined, () => 'nope'),
    headers: wallet,
    body: pushToken,
    status: 401,
  },
  {
    name: 'unknown pass type on fetch',
    method: 'GET',
    path: () => `/v1/passes/pass.other/${pass.serialNumber}`,
    headers: wallet,
    status: 401,
  },
  {
    name: 'no Authorization',
    method: 'POST',
    path: registration(),
    headers: () => json,
    body: pushToken,
    status: 401,
  },
  {
    name: 'garbage passesUpdatedSince',
    method: 'GET',
    path: () => `/v1/devices/d/registrations/${pass.passTypeIdentifier}?passesUpdatedSince=yesterday`,
    status: 400,
    message: /passesUpdatedSince/,
  },
  {
    name: 'passesUpdatedSince too large',
    method: 'GET',
    path: () =>
      `/v1/devices/d/registrations/${pass.passTypeIdentifier}?passesUpdatedSince=1:99999999999999999999999:`,
    status: 400,
    message: /passesUpdatedSince/,
  },
  {
    name: 'passesUpdatedSince with xmin after xmax',
    method: 'GET',
    path: () => `/v1/devices/d/registrations/${pass.passTypeIdentifier}?passesUpdatedSince=5:3:`,
    status: 400,
    message: /passesUpdatedSince/,
  },
  {
    name: 'passesUpdatedSince with a running id out of range',
    method: 'GET',
    path: () => `/v1/devices/d/registrations/${pass.passTypeIdentifier}?passesUpdatedSince=3:10:10`,
    status: 400,
    message: /passesUpdatedSince/,
  },
  {
    name: 'passesUpdatedSince with xmin 0',
    method: 'GET',
    path: () => `/v1/devices/d/registrations/${pass.passTypeIdentifier}?passesUpdatedSince=0:0:`,
    status: 400,
    message: /passesUpdatedSince/,
  },
  {
    name: 'unknown query parameter',
    method: 'GET',
    path: () => `/v1/devices/d/registrations/${pass.passTypeIdentifier}?other=1`,
    status: 400,
  },
  {
    name: 'log without logs',
    method: 'POST',
    path: () => '/v1/log',
    headers: () => json,
    body: '{"messages":[]}',
    status: 400,
  },
  {
    name: 'log with a non-string',
    method: 'POST',
    path: () => '/v1/log',
    headers: () => json,
    body: '{"logs":[1]}',
    status: 400,
    message: /logs/,
  },
  { name: 'admin without token', method: 'GET', path: () => '/admin/passes', status: 401 },
  {
    name: 'admin with a wrong token',
    method: 'GET',
    path: () => '/admin/passes',
    headers: () => ({ authorization: 'Bearer wrong-token-wrong-token' }),
    status: 401,
  },
  {
    name: 'admin: unknown template',
    method: 'POST',
    path: () => '/admin/passes',
    headers: admin,
    body: '{"template":"nope"}',
    status: 400,
    message: /nope/,
  },
  {
    name: 'admin: unknown field key',
    method: 'POST',
    path: () => '/admin/passes',
    headers: admin,
    body: '{"template":"loyalty","fields":{"noSuchField":1}}',
    status: 400,
    message: /noSuchField/,
  },
  {
    name: 'admin: duplicate serial',
    method: 'POST',
    path: () => '/admin/passes',
    headers: admin,
    body: '{"template":"loyalty","serialNumber":"bad-input-1"}',
    status: 409,
  },
  {
    name: 'admin: invalid color',
    method: 'POST',
    path: () => '/admin/passes',
    headers: admin,
    body: '{"template":"loyalty","pass":{"backgroundColor":"red"}}',
    status: 400,
    message: /backgroundColor/,
  },
  {
    name: 'admin: identity key in overrides',
    method: 'POST',
    path: () => '/admin/passes',
    headers: admin,
    body: '{"template":"loyalty","pass":{"authenticationToken":"mine-mine-mine-mine"}}',
    status: 400,
    message: /authenticationToken/,
  },
  {
    name: 'admin: extra top-level key',
    method: 'POST',
    path: () => '/admin/passes',
    headers: admin,
    body: '{"template":"loyalty","colour":"x"}',
    status: 400,
    message: /colour/,
  },
  {
    name: 'admin: serial with a slash',
    method: 'POST',
    path: () => '/admin/passes',
    headers: admin,
    body: '{"template":"loyalty","serialNumber":"a/b"}',
    status: 400,
    message: /serialNumber/,
  },
  {
    name: 'admin: malformed JSON',
    method: 'POST',
    path: () => '/admin/passes',
    headers: admin,
    body: '{',
    status: 400,
  },
  {
    name: 'admin: empty change',
    method: 'PATCH',
    path: () => `/admin/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`,
    headers: admin,
    body: '{}',
    status: 400,
    message: /nothing to change/,
  },
  {
    name: 'admin: change of an unknown pass',
    method: 'PATCH',
    path: () => `/admin/passes/${pass.passTypeIdentifier}/nope`,
    headers: admin,
    body: '{"fields":{"points":1}}',
    status: 404,
  },
  {
    name: 'admin: bad cursor',
    method: 'GET',
    path: () => '/admin/passes?cursor=zzz',
    headers: admin,
    status: 400,
    message: /cursor/,
  },
  {
    name: 'admin: limit out of range',
    method: 'GET',
    path: () => '/admin/passes?limit=100000',
    headers: admin,
    status: 400,
    message: /limit/,
  },
  {
    name: 'download: tampered link',
    method: 'GET',
    path: () => `/download/${pass.passTypeIdentifier}/${pass.serialNumber}?expires=9999999999&signature=abc`,
    status: 403,
  },
  {
    name: 'download: no signature',
    method: 'GET',
    path: () => `/download/${pass.passTypeIdentifier}/${pass.serialNumber}`,
    status: 400,
  },
  { name: 'unknown route', method: 'GET', path: () => '/v2/whatever', status: 404 },
];

describe('bad input gets a 4xx with a JSON body naming the problem', () => {
  it.each(cases)('$name → $status', async (test) => {
    const response = await fetch(`${server.baseUrl}${test.path()}`, {
      method: test.method,
      headers: test.headers?.() ?? {},
      body: test.body,
    });
    expect(response.status).toBe(test.status);
    expect(response.headers.get('content-type')).toMatch(/application\/json/);
    const body = (await response.json()) as { statusCode: number; message: string };
    expect(body.statusCode).toBe(test.status);
    expect(body.message).toEqual(expect.any(String));
    if (test.message) expect(body.message).toMatch(test.message);
  });

  it('keeps serving afterwards', async () => {
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
    expect(
      (await server.admin('GET', `/admin/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`)).status,
    ).toBe(200);
  });
});

describe('download links', () => {
  it('serve the pass while valid, 403 when tampered, 410 when expired', async () => {
    const view = await server.admin('GET', `/admin/passes/${pass.passTypeIdentifier}/${pass.serialNumber}`);
    const url = new URL(String(view.body.downloadUrl));
    expect(url.origin).toBe(server.baseUrl);
    expect((await fetch(url)).status).toBe(200);

    const otherSerial = new URL(url);
    otherSerial.pathname = otherSerial.pathname.replace(pass.serialNumber, 'someone-else');
    expect((await fetch(otherSerial)).status).toBe(403);
    const extended = new URL(url);
    extended.searchParams.set('expires', String(Number(url.searchParams.get('expires')) + 1));
    expect((await fetch(extended)).status).toBe(403);
  });
});
