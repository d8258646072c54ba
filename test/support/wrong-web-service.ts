import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';

/*
 * A tiny PassKit web service that follows Apple's rules except the ones it is told to break, one flag per rule,
 * for testing `simulate` against a server that is not ours. With no flags it conforms. It holds one pass, serves
 * it unsigned (simulate checks the protocol, not the signature) and keeps its state in memory.
 */
export type Breakage =
  | 'register-new-200' // 200 instead of 201 on a first registration
  | 'register-again-201' // 201 instead of 200 when already registered
  | 'list-requires-authorization' // 401 on the list without an Authorization header
  | 'list-omits-serial' // the list without a tag leaves the pass out
  | 'last-updated-number' // lastUpdated as a JSON number
  | 'tag-ignored' // passesUpdatedSince ignored: every list answers 200 with the pass
  | 'wrong-content-type' // the pass as application/octet-stream
  | 'no-last-modified' // no Last-Modified header on the pass
  | 'ignore-if-modified-since' // never 304
  | 'wrong-serial' // the served pass.json has another serialNumber
  | 'fetch-any-token' // the pass is served for any token
  | 'register-any-token' // registrations accepted for any token
  | 'unregister-missing-404' // 404 when unregistering a pass that is not registered
  | 'no-log'; // POST /v1/log is not implemented (404)

export interface WrongWebService {
  baseUrl: string;
  passTypeIdentifier: string;
  serialNumber: string;
  authenticationToken: string;
  /** A .pkpass of the pass, with webServiceURL pointing here. */
  passFile: string;
  close(): Promise<void>;
}

interface State {
  breaks: ReadonlySet<Breakage>;
  baseUrl: string;
  passTypeIdentifier: string;
  serialNumber: string;
  authenticationToken: string;
  registered: Set<string>;
  /** Whole seconds, as HTTP dates have. */
  lastModified: Date;
  /** The tag of the pass's last change; tags are a counter. */
  updateTag: number;
}

export async function startWrongWebService(breaks: Breakage[] = []): Promise<WrongWebService> {
  const state: State = {
    breaks: new Set(breaks),
    baseUrl: '',
    passTypeIdentifier: 'pass.example.wrong-web-service',
    serialNumber: `wrong-${randomBytes(4).toString('hex')}`,
    authenticationToken: randomBytes(20).toString('hex'),
    registered: new Set(),
    lastModified: new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000),
    updateTag: 1,
  };
  const server = createServer((request, response) => {
    handle(state, request, response).catch(() => send(response, 500, {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const passFile = join(tmpdir(), `${state.serialNumber}.pkpass`);
  await writeFile(passFile, bundle(state, state.serialNumber));
  return {
    baseUrl: state.baseUrl,
    passTypeIdentifier: state.passTypeIdentifier,
    serialNumber: state.serialNumber,
    authenticationToken: state.authenticationToken,
    passFile,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function bundle(state: State, serialNumber: string): Uint8Array {
  const passJson = {
    formatVersion: 1,
    passTypeIdentifier: state.passTypeIdentifier,
    teamIdentifier: 'WRONG00000',
    serialNumber,
    authenticationToken: state.authenticationToken,
    webServiceURL: state.baseUrl,
    organizationName: 'Wrong web service',
    description: 'A pass served by a deliberately wrong web service',
    generic: { primaryFields: [{ key: 'name', label: 'NAME', value: 'Test' }] },
  };
  return zipSync({ 'pass.json': new TextEncoder().encode(JSON.stringify(passJson)) });
}

function send(
  response: ServerResponse,
  status: number,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const text = body === undefined ? '' : JSON.stringify(body);
  response.writeHead(status, { ...(text ? { 'content-type': 'application/json' } : {}), ...headers });
  response.end(text);
}

async function readBody(request: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of request) text += String(chunk);
  return text;
}

async function handle(state: State, request: IncomingMessage, response: ServerResponse): Promise<void> {
  await readBody(request);
  const url = new URL(request.url ?? '/', state.baseUrl);
  const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);
  const route = `${request.method} ${parts.length}`;
  if (parts[0] !== 'v1') return send(response, 404, { error: 'not found' });
  if (parts[1] === 'devices' && route === 'POST 6') return register(state, request, response, parts[2] ?? '');
  if (parts[1] === 'devices' && route === 'DELETE 6')
    return unregister(state, request, response, parts[2] ?? '');
  if (parts[1] === 'devices' && route === 'GET 5') return list(state, request, response, parts[2] ?? '', url);
  if (parts[1] === 'passes' && route === 'GET 4') return fetchPass(state, request, response);
  if (parts[1] === 'log' && route === 'POST 2' && !state.breaks.has('no-log')) return send(response, 200, {});
  return send(response, 404, { error: 'not found' });
}

function authorized(state: State, request: IncomingMessage): boolean {
  return request.headers.authorization === `ApplePass ${state.authenticationToken}`;
}

function register(state: State, request: IncomingMessage, response: ServerResponse, device: string) {
  if (!authorized(state, request) && !state.breaks.has('register-any-token')) return send(response, 401, {});
  const isNew = !state.registered.has(device);
  state.registered.add(device);
  const created = isNew ? !state.breaks.has('register-new-200') : state.breaks.has('register-again-201');
  return send(response, created ? 201 : 200, {});
}

function unregister(state: State, request: IncomingMessage, response: ServerResponse, device: string) {
  if (!authorized(state, request)) return send(response, 401, {});
  const existed = state.registered.delete(device);
  return send(response, !existed && state.breaks.has('unregister-missing-404') ? 404 : 200, {});
}

function list(state: State, request: IncomingMessage, response: ServerResponse, device: string, url: URL) {
  if (state.breaks.has('list-requires-authorization') && !authorized(state, request))
    return send(response, 401, { error: 'unauthorized' });
  if (!state.registered.has(device)) return send(response, 204);
  const since = url.searchParams.get('passesUpdatedSince');
  const changed = since === null || Number(since) < state.updateTag || state.breaks.has('tag-ignored');
  if (!changed) return send(response, 204);
  const lastUpdated = state.updateTag;
  return send(response, 200, {
    serialNumbers: state.breaks.has('list-omits-serial') && since === null ? [] : [state.serialNumber],
    lastUpdated: state.breaks.has('last-updated-number') ? lastUpdated : String(lastUpdated),
  });
}

function fetchPass(state: State, request: IncomingMessage, response: ServerResponse) {
  if (!authorized(state, request) && !state.breaks.has('fetch-any-token')) return send(response, 401, {});
  const headers: Record<string, string> = {
    'content-type': state.breaks.has('wrong-content-type')
      ? 'application/octet-stream'
      : 'application/vnd.apple.pkpass',
  };
  if (!state.breaks.has('no-last-modified')) headers['last-modified'] = state.lastModified.toUTCString();
  const since = Date.parse(request.headers['if-modified-since'] ?? '');
  if (since >= state.lastModified.getTime() && !state.breaks.has('ignore-if-modified-since'))
    return send(response, 304, undefined, headers);
  const serialNumber = state.breaks.has('wrong-serial') ? `${state.serialNumber}-other` : state.serialNumber;
  response.writeHead(200, headers);
  response.end(bundle(state, serialNumber));
}
