import { randomBytes } from 'node:crypto';
import { unzipSync } from 'fflate';

/*
 * A simulated iPhone for `simulate`: it speaks Apple's PassKit web service protocol over plain HTTP to whatever
 * server the pass's webServiceURL names, and knows nothing of our own server's code.
 */

/** What Wallet reads from pass.json to talk to the pass's web service. */
export interface PassUnderTest {
  passTypeIdentifier: string;
  serialNumber: string;
  authenticationToken: string;
  /** Without a trailing slash: Wallet appends `/v1/...`. */
  webServiceURL: string;
  passJson: Record<string, unknown>;
}

/** One HTTP answer; status 0 when there was none (connection refused, timeout…), with the reason in `error`. */
export interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
  error?: string;
}

const requestTimeoutMs = 10_000;

/** pass.json from a .pkpass bundle; throws with a readable message when there is none. */
export function readPassJson(bundle: Uint8Array): Record<string, unknown> {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bundle);
  } catch {
    throw new Error('not a zip archive');
  }
  const entry = files['pass.json'];
  if (!entry) throw new Error('the archive has no pass.json at its root');
  const parsed: unknown = JSON.parse(Buffer.from(entry).toString('utf8'));
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error('pass.json is not a JSON object');
  return parsed as Record<string, unknown>;
}

/** The four keys an updatable pass needs, taken from pass.json; throws naming the first one missing. */
export function passUnderTest(passJson: Record<string, unknown>): PassUnderTest {
  const text = (key: string): string => {
    const value = passJson[key];
    if (typeof value !== 'string' || value === '')
      throw new Error(`pass.json has no ${key}: Wallet would not register this pass for updates`);
    return value;
  };
  return {
    passTypeIdentifier: text('passTypeIdentifier'),
    serialNumber: text('serialNumber'),
    authenticationToken: text('authenticationToken'),
    webServiceURL: text('webServiceURL').replace(/\/+$/, ''),
    passJson,
  };
}

async function request(url: string, init: RequestInit): Promise<Answer> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(requestTimeoutMs) });
    return {
      status: response.status,
      headers: response.headers,
      body: Buffer.from(await response.arrayBuffer()),
    };
  } catch (error) {
    return { status: 0, headers: new Headers(), body: Buffer.alloc(0), error: networkError(error) };
  }
}

/** Why a fetch got no answer, e.g. "ECONNREFUSED (connect ECONNREFUSED 127.0.0.1:3000)". */
export function networkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error && 'code' in cause) return `${String(cause.code)} (${cause.message})`;
  return error.name === 'TimeoutError' ? `no answer within ${requestTimeoutMs / 1000} s` : error.message;
}

/** "answered 401 {…}" or "no answer: ECONNREFUSED…", for a finding's detail. */
export function describeAnswer(answer: Answer): string {
  if (answer.status === 0) return `no answer: ${answer.error ?? 'unknown error'}`;
  // The body only of error answers: it often says why (e.g. {"error": "unauthorized"}).
  const text = answer.status >= 400 ? answer.body.toString('utf8').replace(/\s+/g, ' ').trim() : '';
  const printable = text !== '' && !text.includes('\uFFFD');
  return printable ? `answered ${answer.status} ${truncate(text, 120)}` : `answered ${answer.status}`;
}

function truncate(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}

export class SimulatedDevice {
  /** Fresh per run, so runs never see each other's registrations. */
  readonly deviceLibraryIdentifier = randomBytes(16).toString('hex');
  /** 64 hexadecimal characters, the shape of an APNs device token. */
  readonly pushToken = randomBytes(32).toString('hex');

  constructor(readonly pass: PassUnderTest) {}

  private segment(value: string): string {
    return encodeURIComponent(value);
  }

  private registrationUrl(): string {
    const { webServiceURL, passTypeIdentifier, serialNumber } = this.pass;
    return `${webServiceURL}/v1/devices/${this.segment(this.deviceLibraryIdentifier)}/registrations/${this.segment(passTypeIdentifier)}/${this.segment(serialNumber)}`;
  }

  private authorization(token: string): Record<string, string> {
    return { authorization: `ApplePass ${token}` };
  }

  register(token = this.pass.authenticationToken): Promise<Answer> {
    return request(this.registrationUrl(), {
      method: 'POST',
      headers: { ...this.authorization(token), 'content-type': 'application/json' },
      body: JSON.stringify({ pushToken: this.pushToken }),
    });
  }

  unregister(token = this.pass.authenticationToken): Promise<Answer> {
    return request(this.registrationUrl(), { method: 'DELETE', headers: this.authorization(token) });
  }

  /** Wallet sends no Authorization here; `withToken` is only for carrying on after a server that demands one. */
  list(tag: string | undefined, withToken = false): Promise<Answer> {
    const { webServiceURL, passTypeIdentifier } = this.pass;
    const query = tag === undefined ? '' : `?passesUpdatedSince=${encodeURIComponent(tag)}`;
    const url = `${webServiceURL}/v1/devices/${this.segment(this.deviceLibraryIdentifier)}/registrations/${this.segment(passTypeIdentifier)}${query}`;
    return request(url, { headers: withToken ? this.authorization(this.pass.authenticationToken) : {} });
  }

  fetchPass(ifModifiedSince?: string, token = this.pass.authenticationToken): Promise<Answer> {
    const { webServiceURL, passTypeIdentifier, serialNumber } = this.pass;
    const headers = this.authorization(token);
    if (ifModifiedSince !== undefined) headers['if-modified-since'] = ifModifiedSince;
    return request(
      `${webServiceURL}/v1/passes/${this.segment(passTypeIdentifier)}/${this.segment(serialNumber)}`,
      {
        headers,
      },
    );
  }

  log(messages: string[]): Promise<Answer> {
    return request(`${this.pass.webServiceURL}/v1/log`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ logs: messages }),
    });
  }
}

/** The SerialNumbers object of a 200 list answer, or a reason why it is not one. */
export interface SerialNumbers {
  serialNumbers: string[];
  lastUpdated: unknown;
}

export function readSerialNumbers(answer: Answer): SerialNumbers | string {
  let body: unknown;
  try {
    body = JSON.parse(answer.body.toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  if (typeof body !== 'object' || body === null) return 'the body is not a JSON object';
  const { serialNumbers, lastUpdated } = body as Record<string, unknown>;
  if (!Array.isArray(serialNumbers)) return 'the body has no serialNumbers array';
  return { serialNumbers: serialNumbers.map(String), lastUpdated };
}
