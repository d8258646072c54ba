/**
 * A mock APNs that answers like Apple's (reasons from "Handling notification responses from APNs"):
 * real HTTP/2 over TLS on 127.0.0.1, provider-token (ES256 JWT) or client-certificate authentication,
 * and fault injection (status answers, GOAWAY, dropped connections, latency, one stream at first).
 * Kept fast: it also serves the push benchmarks.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import {
  constants,
  createSecureServer,
  type Http2SecureServer,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import jwt from 'jsonwebtoken';
import type { Clock } from '../../src/clock.js';

export interface MockApnsOptions {
  keyId?: string;
  teamId?: string;
  /** Token mode: the public key that verifies ES256 provider tokens. */
  publicKeyPem?: string;
  /** Certificate mode: require a client certificate signed by this CA; its UID must be the topic. */
  clientCa?: string;
  /** APNs rejects provider tokens older than one hour. */
  maxTokenAgeSec?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS until the first valid request on a session (APNs starts at 1). */
  initialMaxConcurrentStreams?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS after the first valid request. */
  maxConcurrentStreams?: number;
  /** Time source for token ages (defaults to the real time). */
  clock?: Clock;
  /** Keep `received` (default true); benchmarks may turn it off. */
  record?: boolean;
}

export interface ReceivedPush {
  pushToken: string;
  topic: string;
  headers: Record<string, string>;
  body: string;
  at: number;
  status: number;
  reason?: string;
  /** Streams open on the session when this one arrived (itself included). */
  concurrent: number;
  /** Certificate mode: the SHA-256 of the client certificate the push came with (hex, lower case). */
  clientCertificateSha256?: string;
}

export interface MockApnsStats {
  sessions: number;
  goaways: number;
  drops: number;
  refused: number;
  /** Highest number of streams open at once on one session. */
  maxConcurrentSeen: number;
}

export interface FaultRates {
  /** Probability of 500 InternalServerError. */
  internalServerError?: number;
  /** Probability of 503 ServiceUnavailable. */
  serviceUnavailable?: number;
  /** Probability of 429 TooManyRequests. */
  tooManyRequests?: number;
}

export interface MockApns {
  origin: string;
  /** The self-signed certificate of the mock: trust it in the client (`ca`). */
  caPem: string;
  received: ReceivedPush[];
  /** Only the requests answered 200. */
  accepted(): ReceivedPush[];
  stats: MockApnsStats;
  failNext(n: number, status: number, reason: string, extra?: Record<string, unknown>): void;
  failTokens: Map<string, { status: number; reason: string; timestamp?: number }>;
  /** Each session sends GOAWAY(lastStreamID = its k-th stream) and refuses the streams after it. */
  goawayAfterStreams(k: number | undefined): void;
  /**
   * The TCP connection of a session is destroyed when its (k+1)-th stream arrives, for the next `times`
   * sessions that get there (default 1).
   */
  dropConnectionAfterStreams(k: number | undefined, times?: number): void;
  setLatencyMs(ms: number): void;
  /** Stops reading from every open connection: pings and requests go unanswered (a dead peer). */
  stallConnections(): void;
  setFaultRates(rates: FaultRates): void;
  close(): Promise<void>;
}

/** Apple's apns-push-type values. */
const PUSH_TYPES = new Set([
  'alert',
  'background',
  'location',
  'voip',
  'complication',
  'fileprovider',
  'mdm',
  'liveactivity',
  'pushtoserver',
  'widgets',
  'controls',
]);
const DEVICE_PATH = /^\/3\/device\/([^/?]*)$/;
const PUSH_TOKEN = /^[0-9a-fA-F]{64,}$/;

interface SessionState {
  streams: number;
  open: number;
  raised: boolean;
  goawayLastId: number | undefined;
  topicFromCertificate: string | undefined;
}

interface Answer {
  status: number;
  reason?: string;
  extra?: Record<string, unknown>;
}

type TokenCheck = { ok: true; iat: number } | { ok: false; reason: string };

let certificateCache: { key: string; cert: string } | undefined;

/** A self-signed P-256 certificate for 127.0.0.1 / localhost, made once per process with openssl. */
function serverCertificate(): { key: string; cert: string } {
  if (certificateCache) return certificateCache;
  const dir = mkdtempSync(join(tmpdir(), 'mock-apns-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=mock-apns',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'pipe' },
    );
    certificateCache = {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
    return certificateCache;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

class Mock implements MockApns {
  origin = '';
  readonly caPem: string;
  readonly received: ReceivedPush[] = [];
  readonly failTokens = new Map<string, { status: number; reason: string; timestamp?: number }>();
  readonly stats: MockApnsStats = { sessions: 0, goaways: 0, drops: 0, refused: 0, maxConcurrentSeen: 0 };
  readonly server: Http2SecureServer;

  private readonly o: MockApnsOptions;
  private readonly initialLimit: number;
  private readonly limit: number;
  private readonly sessionState = new WeakMap<Http2Session, SessionState>();
  private readonly sessions = new Set<Http2Session>();
  /** Raw TLS sockets by remote port: `session.socket` is a proxy that refuses `destroy()`. */
  private readonly sockets = new Map<number, TLSSocket>();
  private readonly tokenChecks = new Map<string, TokenCheck>();
  private failures: Array<{ remaining: number; answer: Answer }> = [];
  private goawayAfter: number | undefined;
  private dropAfter: number | undefined;
  private dropsLeft = 0;
  private latencyMs = 0;
  private rates: Required<FaultRates> = { internalServerError: 0, serviceUnavailable: 0, tooManyRequests: 0 };

  constructor(o: MockApnsOptions) {
    this.o = o;
    this.limit = o.maxConcurrentStreams ?? 1000;
    this.initialLimit = o.initialMaxConcurrentStreams ?? this.limit;
    const { key, cert } = serverCertificate();
    this.caPem = cert;
    const certificateMode = o.clientCa !== undefined;
    this.server = createSecureServer({
      key,
      cert,
      allowHTTP1: false,
      settings: { maxConcurrentStreams: this.initialLimit },
      // Certificate mode: the TLS handshake itself rejects a client certificate not signed by clientCa.
      ...(certificateMode ? { requestCert: true, rejectUnauthorized: true, ca: o.clientCa } : {}),
    });
    this.server.on('secureConnection', (socket: TLSSocket) => {
      const port = socket.remotePort ?? 0;
      this.sockets.set(port, socket);
      socket.once('close', () => this.sockets.delete(port));
    });
    this.server.on('session', (session) => this.onSession(session));
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.origin = `https://127.0.0.1:${port}`;
  }

  accepted(): ReceivedPush[] {
    return this.received.filter((r) => r.status === 200);
  }

  failNext(n: number, status: number, reason: string, extra?: Record<string, unknown>): void {
    this.failures.push({ remaining: n, answer: { status, reason, ...(extra ? { extra } : {}) } });
  }

  goawayAfterStreams(k: number | undefined): void {
    this.goawayAfter = k;
  }

  dropConnectionAfterStreams(k: number | undefined, times = 1): void {
    this.dropAfter = k;
    this.dropsLeft = times;
  }

  setLatencyMs(ms: number): void {
    this.latencyMs = ms;
  }

  stallConnections(): void {
    // http2 reads the TLS socket natively, so `pause()` is not enough: stop reading at the handle.
    for (const socket of this.sockets.values()) {
      const handle: unknown = Reflect.get(socket, '_handle');
      const readStop: unknown =
        handle && typeof handle === 'object' ? Reflect.get(handle, 'readStop') : undefined;
      if (typeof readStop === 'function') readStop.call(handle);
    }
  }

  setFaultRates(rates: FaultRates): void {
    this.rates = { internalServerError: 0, serviceUnavailable: 0, tooManyRequests: 0, ...rates };
  }

  async close(): Promise<void> {
    for (const session of this.sessions) session.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- connection level ----

  private onSession(session: Http2Session): void {
    this.stats.sessions++;
    this.sessions.add(session);
    this.sessionState.set(session, {
      streams: 0,
      open: 0,
      raised: this.initialLimit === this.limit,
      goawayLastId: undefined,
      topicFromCertificate: undefined,
    });
    session.on('error', () => {});
    session.on('close', () => this.sessions.delete(session));
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => {});
    const session = stream.session;
    const state = session ? this.sessionState.get(session) : undefined;
    if (!session || !state) return;
    const n = ++state.streams;
    // After GOAWAY(lastStreamID) the streams above it are not processed (RFC 9113 §6.8): refuse them.
    if (state.goawayLastId !== undefined && (stream.id ?? 0) > state.goawayLastId) {
      this.stats.refused++;
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (this.dropAfter !== undefined && n > this.dropAfter) {
      // A TCP drop, not a GOAWAY: the client learns nothing about which streams were processed.
      if (--this.dropsLeft <= 0) this.dropAfter = undefined;
      this.stats.drops++;
      this.sockets.get(session.socket.remotePort ?? 0)?.destroy();
      return;
    }
    if (this.goawayAfter !== undefined && n === this.goawayAfter) {
      state.goawayLastId = stream.id ?? 0;
      this.stats.goaways++;
      session.goaway(constants.NGHTTP2_NO_ERROR, state.goawayLastId);
    }
    state.open++;
    if (state.open > this.stats.maxConcurrentSeen) this.stats.maxConcurrentSeen = state.open;
    stream.on('close', () => this.onStreamClosed(session, state));
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      body += chunk;
    });
    stream.on('end', () => this.onRequest(stream, session, state, headers, body));
  }

  private onStreamClosed(session: Http2Session, state: SessionState): void {
    state.open--;
    // After our GOAWAY, close once the processed streams are answered (nghttp2 keeps lastStreamID).
    if (state.goawayLastId !== undefined && state.open === 0 && !session.closed) session.close();
  }

  // ---- request level ----

  private onRequest(
    stream: ServerHttp2Stream,
    session: Http2Session,
    state: SessionState,
    headers: IncomingHttpHeaders,
    body: string,
  ): void {
    const path = headerValue(headers[constants.HTTP2_HEADER_PATH]);
    const pushToken = DEVICE_PATH.exec(path)?.[1] ?? '';
    const topic = headerValue(headers['apns-topic']);
    const answer = this.validate(headers, path, pushToken, topic, body, session, state);
    if (this.o.record !== false) {
      this.received.push({
        pushToken,
        topic,
        headers: plainHeaders(headers),
        body,
        at: Date.now(),
        status: answer.status,
        concurrent: state.open,
        ...(answer.reason ? { reason: answer.reason } : {}),
        ...(this.o.clientCa === undefined
          ? {}
          : { clientCertificateSha256: clientCertificateSha256(session) }),
      });
    }
    if (this.latencyMs > 0) setTimeout(() => this.respond(stream, session, state, answer), this.latencyMs);
    else this.respond(stream, session, state, answer);
  }

  private respond(
    stream: ServerHttp2Stream,
    session: Http2Session,
    state: SessionState,
    answer: Answer,
  ): void {
    respond(stream, answer);
    if (answer.status === 200 && !state.raised && !session.destroyed) {
      // APNs raises SETTINGS_MAX_CONCURRENT_STREAMS once the connection has shown valid credentials.
      state.raised = true;
      session.settings({ maxConcurrentStreams: this.limit });
    }
  }

  /** Apple's checks, in the order APNs reports them. */
  private validate(
    headers: IncomingHttpHeaders,
    path: string,
    pushToken: string,
    topic: string,
    body: string,
    session: Http2Session,
    state: SessionState,
  ): Answer {
    if (headers[constants.HTTP2_HEADER_METHOD] !== 'POST') return { status: 405, reason: 'MethodNotAllowed' };
    if (!DEVICE_PATH.test(path)) return { status: 404, reason: 'BadPath' };
    if (pushToken === '') return { status: 400, reason: 'MissingDeviceToken' };
    if (!PUSH_TOKEN.test(pushToken)) return { status: 400, reason: 'BadDeviceToken' };
    const auth = this.checkAuthentication(headers, topic, session, state);
    if (auth) return auth;
    if (topic === '') return { status: 400, reason: 'MissingTopic' };
    const pushType = headers['apns-push-type'];
    if (pushType !== undefined && !PUSH_TYPES.has(headerValue(pushType))) {
      return { status: 400, reason: 'InvalidPushType' };
    }
    const priority = headers['apns-priority'];
    if (priority !== undefined && !['1', '5', '10'].includes(headerValue(priority))) {
      return { status: 400, reason: 'BadPriority' };
    }
    if (body === '') return { status: 400, reason: 'PayloadEmpty' };
    // Not an Apple reason: Apple accepts any JSON, but Wallet's notification must be exactly `{}`.
    if (body !== '{}') return { status: 400, reason: 'BadPayload' };
    return this.injectedAnswer(pushToken) ?? { status: 200 };
  }

  private injectedAnswer(pushToken: string): Answer | undefined {
    const perToken = this.failTokens.get(pushToken);
    if (perToken) {
      const extra = perToken.timestamp === undefined ? undefined : { timestamp: perToken.timestamp };
      return { status: perToken.status, reason: perToken.reason, ...(extra ? { extra } : {}) };
    }
    const next = this.failures[0];
    if (next) {
      if (--next.remaining <= 0) this.failures.shift();
      return next.answer;
    }
    return this.randomFault();
  }

  private randomFault(): Answer | undefined {
    const { internalServerError, serviceUnavailable, tooManyRequests } = this.rates;
    if (internalServerError + serviceUnavailable + tooManyRequests === 0) return undefined;
    const x = Math.random();
    if (x < internalServerError) return { status: 500, reason: 'InternalServerError' };
    if (x < internalServerError + serviceUnavailable) return { status: 503, reason: 'ServiceUnavailable' };
    if (x < internalServerError + serviceUnavailable + tooManyRequests) {
      return { status: 429, reason: 'TooManyRequests' };
    }
    return undefined;
  }

  private checkAuthentication(
    headers: IncomingHttpHeaders,
    topic: string,
    session: Http2Session,
    state: SessionState,
  ): Answer | undefined {
    if (this.o.clientCa !== undefined) return this.checkCertificateTopic(topic, session, state);
    if (this.o.publicKeyPem === undefined) return undefined;
    const authorization = headerValue(headers.authorization);
    if (!authorization.startsWith('bearer ')) return { status: 403, reason: 'MissingProviderToken' };
    const check = this.checkToken(authorization.slice('bearer '.length));
    if (!check.ok) return { status: 403, reason: check.reason };
    const nowSec = (this.o.clock?.now().getTime() ?? Date.now()) / 1000;
    if (nowSec - check.iat > (this.o.maxTokenAgeSec ?? 3600)) {
      return { status: 403, reason: 'ExpiredProviderToken' };
    }
    return undefined;
  }

  /** Verifies a JWT once (signatures are costly; clients reuse one token for many requests). */
  private checkToken(token: string): TokenCheck {
    const cached = this.tokenChecks.get(token);
    if (cached) return cached;
    let check: TokenCheck;
    try {
      const decoded = jwt.verify(token, this.o.publicKeyPem ?? '', { algorithms: ['ES256'], complete: true });
      const payload = decoded.payload;
      const ok =
        decoded.header.kid === this.o.keyId &&
        typeof payload === 'object' &&
        payload.iss === this.o.teamId &&
        typeof payload.iat === 'number';
      check = ok ? { ok: true, iat: payload.iat ?? 0 } : { ok: false, reason: 'InvalidProviderToken' };
    } catch {
      check = { ok: false, reason: 'InvalidProviderToken' };
    }
    this.tokenChecks.set(token, check);
    return check;
  }

  /** Certificate mode: a Pass Type ID certificate's UID is the one topic it may push to. */
  private checkCertificateTopic(
    topic: string,
    session: Http2Session,
    state: SessionState,
  ): Answer | undefined {
    if (state.topicFromCertificate === undefined) {
      const certificate = (session.socket as TLSSocket).getPeerCertificate();
      const uid: unknown = (certificate.subject as unknown as Record<string, unknown> | undefined)?.UID;
      state.topicFromCertificate = typeof uid === 'string' ? uid : '';
    }
    if (state.topicFromCertificate === '') return { status: 403, reason: 'BadCertificate' };
    if (topic !== '' && topic !== state.topicFromCertificate)
      return { status: 400, reason: 'TopicDisallowed' };
    return undefined;
  }
}

function clientCertificateSha256(session: Http2Session): string {
  const { fingerprint256 } = (session.socket as TLSSocket).getPeerCertificate();
  return (fingerprint256 ?? '').replaceAll(':', '').toLowerCase();
}

function respond(stream: ServerHttp2Stream, answer: Answer): void {
  if (stream.destroyed || stream.closed) return;
  const apnsId = randomUUID();
  if (answer.status === 200) {
    stream.respond({ ':status': 200, 'apns-id': apnsId }, { endStream: true });
    return;
  }
  stream.respond({ ':status': answer.status, 'apns-id': apnsId, 'content-type': 'application/json' });
  stream.end(JSON.stringify({ reason: answer.reason, ...answer.extra }));
}

function headerValue(value: string | string[] | undefined): string {
  if (value === undefined) return '';
  return Array.isArray(value) ? value.join(',') : value;
}

function plainHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(headers)) out[name] = headerValue(headers[name]);
  return out;
}

export async function startMockApns(o: MockApnsOptions = {}): Promise<MockApns> {
  const mock = new Mock(o);
  await mock.listen();
  return mock;
}

// ---- helpers for tests that use the mock ----

/** A provider key pair like Apple's .p8 (PKCS#8, EC P-256) and its public key for the mock. */
export function generateProviderKey(): { keyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** A well-formed push token (64 hex characters), distinct for each `i`. */
export function pushTokenFor(i: number): string {
  return i.toString(16).padStart(8, '0').repeat(8);
}
