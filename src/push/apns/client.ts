import { createHash } from 'node:crypto';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect as connectHttp2,
  constants,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
  type OutgoingHttpHeaders,
  type Settings,
} from 'node:http2';
import { createSecureContext, type SecureContext } from 'node:tls';
import { type Clock, systemClock } from '../../clock.js';
import type { Logger } from '../../logger.js';
import { ProviderToken } from './provider-token.js';
import { type ApnsOutcome, classifyApnsResponse } from './response.js';

/*
 * Why a session pool of our own instead of an HTTP/2 agent library (http2-wrapper's Agent):
 * - that Agent keeps handing out a session after it received GOAWAY (it checks `destroyed`, not `closed`),
 *   so `request()` throws, and it cannot tell us which streams were above GOAWAY's lastStreamID;
 * - it fills a session up to the server's SETTINGS_MAX_CONCURRENT_STREAMS only: no lower cap, and it packs
 *   streams onto one session instead of spreading them over `connections`;
 * - it has no ping health check;
 * - per request it parses the origin, builds a key string from ~40 options and allocates two promises.
 * So each session is node:http2's own `connect` (TLS with ALPN h2 and SNI), driven through its session API
 * (goaway, remoteSettings, ping), which is what such an Agent uses underneath anyway.
 */

export type ApnsAuth =
  | { kind: 'token'; keyPem: string; keyId: string; teamId: string }
  | { kind: 'certificate'; certPem: string; keyPem: string; passphrase?: string };

export interface ApnsClientOptions {
  /** e.g. https://api.push.apple.com (Wallet passes always use the production environment). */
  origin: string;
  auth: ApnsAuth;
  /** `apns-push-type`; Wallet's update notification is a background push. */
  pushType?: string;
  /** `apns-priority`; no header when absent (APNs then uses its default). */
  priority?: number;
  /** Cap on concurrent streams per session, below the server's SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams?: number;
  /** Budget of one `send()` call, queueing included; when exceeded the outcome is `retry`. */
  requestTimeoutMs?: number;
  pingIntervalMs?: number;
  /** Number of HTTP/2 sessions kept open. */
  connections?: number;
  /** Age of a provider token before it is renewed (token auth; clamped to 20–50 minutes). */
  tokenRenewAfterMs?: number;
  clock?: Clock;
  log: Logger;
  /** An extra CA to trust (tests); added to Node's default store, which honours NODE_EXTRA_CA_CERTS. */
  ca?: string;
}

export interface ApnsClient {
  /** Sends Wallet's update notification (`{}`) for one push token. Never rejects. */
  send(pushToken: string, topic: string): Promise<ApnsOutcome>;
  /** Stops taking requests, waits for queued and in-flight ones, then closes the sessions. */
  close(): Promise<void>;
}

/** A short, non-reversible reference to a push token for logs (push tokens are never logged). */
export function pushTokenRef(pushToken: string): string {
  return createHash('sha256').update(pushToken).digest('hex').slice(0, 8);
}

// Wallet's update notification is the empty dictionary (Apple, PassKit Web Service: "the payload is empty";
// APNs answers 400 PayloadEmpty to a request without a body, so `{}` is sent).
const BODY = Buffer.from('{}');
/** Requests not processed by the server (GOAWAY, REFUSED_STREAM) are resent; this bounds a pathological loop. */
const MAX_UNPROCESSED_RESENDS = 10;
const MAX_RECONNECT_DELAY_MS = 5_000;
const SAFE_PATH_SEGMENT = /^[\w.~-]+$/;

const kPending = Symbol('apnsPending');
const kConnection = Symbol('apnsConnection');

interface TrackedStream extends ClientHttp2Stream {
  [kPending]?: Pending | undefined;
  [kConnection]?: Connection;
}

/** One `send()` call: queued, then on a stream, possibly resent. */
class Pending {
  status = 0;
  body = '';
  apnsId: string | undefined = undefined;
  authorization: string | undefined = undefined;
  stream: TrackedStream | undefined = undefined;
  connection: Connection | undefined = undefined;
  done = false;
  connectionResends = 0;
  unprocessedResends = 0;
  renewed = false;
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly path: string,
    readonly topic: string,
    readonly resolve: (outcome: ApnsOutcome) => void,
  ) {}
}

/** One HTTP/2 session to APNs and what we know of it. */
class Connection {
  /** Streams open on the session (a stream keeps its slot until it closes, even after a timeout). */
  active = 0;
  /** min(server's SETTINGS_MAX_CONCURRENT_STREAMS, cap); 0 until the server's SETTINGS arrive. */
  limit = 0;
  ready = false;
  /** Received GOAWAY, failed a ping, or errored: takes no new requests. */
  retired = false;
  pingTimer: NodeJS.Timeout | undefined = undefined;
  pingOutstanding = false;
  readonly inFlight = new Set<Pending>();

  constructor(
    readonly client: Client,
    readonly id: number,
    readonly session: ClientHttp2Session,
  ) {}
}

class Client implements ApnsClient {
  private readonly url: URL;
  private readonly secureContext: SecureContext;
  private readonly providerToken: ProviderToken | undefined;
  private readonly headers: OutgoingHttpHeaders;
  private readonly cap: number;
  private readonly timeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly maxConnections: number;
  private readonly log: Logger;

  /** Sessions that take requests (or will once connected). */
  private readonly pool: Connection[] = [];
  /** Every open session, including retired ones still finishing their streams. */
  private readonly open = new Set<Connection>();
  private queue: Pending[] = [];
  private queueHead = 0;
  /** Resends go before new requests. */
  private resendQueue: Pending[] = [];
  private outstanding = 0;
  private nextConnectionId = 1;
  private connectFailures = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private idleWaiters: Array<() => void> = [];

  constructor(o: ApnsClientOptions) {
    this.url = new URL(o.origin);
    this.log = o.log.child({ component: 'apns' });
    this.cap = Math.max(1, o.maxConcurrentStreams ?? 1000);
    this.timeoutMs = o.requestTimeoutMs ?? 10_000;
    this.pingIntervalMs = o.pingIntervalMs ?? 60_000;
    this.maxConnections = Math.max(1, o.connections ?? 1);
    this.secureContext = buildSecureContext(o);
    this.providerToken =
      o.auth.kind === 'token'
        ? new ProviderToken({ ...o.auth, clock: o.clock ?? systemClock, renewAfterMs: o.tokenRenewAfterMs })
        : undefined;
    // One header object, mutated per request: node:http2 copies it synchronously in `request()`.
    this.headers = {
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: '',
      'apns-topic': '',
      'apns-push-type': o.pushType ?? 'background',
    };
    if (o.priority !== undefined) this.headers['apns-priority'] = String(o.priority);
  }

  send(pushToken: string, topic: string): Promise<ApnsOutcome> {
    if (this.closing) return Promise.resolve({ kind: 'retry', reason: 'ClientClosed' });
    // A push token is hex (APNs answers 400 BadDeviceToken otherwise); one that cannot even be put in a
    // path is answered here, the way APNs would, instead of breaking the request.
    if (!SAFE_PATH_SEGMENT.test(pushToken))
      return Promise.resolve({ kind: 'unregistered', reason: 'BadDeviceToken' });
    return new Promise<ApnsOutcome>((resolve) => {
      const p = new Pending(`/3/device/${pushToken}`, topic, resolve);
      p.timer = setTimeout(onTimeout, this.timeoutMs, this, p);
      this.outstanding++;
      this.queue.push(p);
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.outstanding > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    await Promise.all([...this.open].map((c) => this.closeConnection(c)));
  }

  // ---- queue and dispatch ----

  /** Starts as many queued requests as the sessions allow; opens sessions when needed. */
  pump(): void {
    for (;;) {
      const p = this.peek();
      if (!p) return;
      const c = this.pickConnection();
      if (!c) {
        this.ensureConnections();
        return;
      }
      this.take();
      this.dispatch(p, c);
    }
  }

  private peek(): Pending | undefined {
    while (this.resendQueue.length > 0) {
      const p = this.resendQueue[0];
      if (p && !p.done) return p;
      this.resendQueue.shift();
    }
    while (this.queueHead < this.queue.length) {
      const p = this.queue[this.queueHead];
      if (p && !p.done) return p;
      this.queueHead++;
    }
    this.compactQueue();
    return undefined;
  }

  private take(): void {
    if (this.resendQueue.length > 0) this.resendQueue.shift();
    else this.queueHead++;
    if (this.queueHead >= 1024 && this.queueHead * 2 >= this.queue.length) this.compactQueue();
  }

  private compactQueue(): void {
    this.queue = this.queue.slice(this.queueHead);
    this.queueHead = 0;
  }

  /** The ready session with the most free slots, if any has one. */
  private pickConnection(): Connection | undefined {
    let best: Connection | undefined;
    let bestFree = 0;
    for (const c of this.pool) {
      const free = c.limit - c.active;
      if (c.ready && !c.retired && free > bestFree) {
        best = c;
        bestFree = free;
      }
    }
    return best;
  }

  private dispatch(p: Pending, c: Connection): void {
    if (c.session.closed || c.session.destroyed) {
      // The session closed under us (a GOAWAY or a dropped socket not yet seen as an event): not sent, so
      // resend. Checked before `request()`, which reports a closed session on the returned stream, not by
      // throwing, since Node 24.
      this.retire(c, c.session.destroyed ? 'session destroyed' : 'session closed');
      this.requeue(p, true);
      return;
    }
    const headers = this.headers;
    headers[constants.HTTP2_HEADER_PATH] = p.path;
    headers['apns-topic'] = p.topic;
    if (this.providerToken) {
      p.authorization = this.providerToken.authorization();
      headers.authorization = p.authorization;
    }
    let stream: TrackedStream;
    try {
      stream = c.session.request(headers, { endStream: false });
    } catch (error) {
      // The request itself is invalid (e.g. a topic with characters a header cannot hold).
      this.finish(p, { kind: 'failed', reason: `InvalidRequest: ${errorCode(error)}` });
      return;
    }
    c.active++;
    c.inFlight.add(p);
    p.stream = stream;
    p.connection = c;
    p.status = 0;
    p.body = '';
    stream[kPending] = p;
    stream[kConnection] = c;
    stream.on('response', onResponse);
    stream.on('data', onData);
    stream.on('error', onStreamError);
    stream.on('close', onStreamClose);
    stream.end(BODY);
  }

  /** Puts a request back in front of the queue. */
  requeue(p: Pending, unprocessed: boolean): void {
    this.detach(p);
    if (unprocessed && ++p.unprocessedResends > MAX_UNPROCESSED_RESENDS) {
      this.finish(p, { kind: 'retry', reason: 'RefusedStream' });
      return;
    }
    this.resendQueue.push(p);
  }

  /** Separates a request from its stream; later events of that stream are ignored. */
  detach(p: Pending): void {
    const stream = p.stream;
    if (stream) stream[kPending] = undefined;
    p.connection?.inFlight.delete(p);
    p.stream = undefined;
    p.connection = undefined;
  }

  finish(p: Pending, outcome: ApnsOutcome): void {
    if (p.done) return;
    p.done = true;
    this.detach(p);
    if (p.timer) clearTimeout(p.timer);
    this.outstanding--;
    p.resolve(outcome);
    if (this.outstanding === 0 && this.idleWaiters.length > 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  // ---- stream results ----

  /** The stream closed after APNs answered: decide. */
  answered(p: Pending): void {
    const outcome = classifyApnsResponse(p.status, p.body, p.apnsId);
    if (outcome.kind === 'renew-token' && !p.renewed && this.providerToken && p.authorization) {
      p.renewed = true;
      // Resend once with a fresh token; the token object renews once for all requests that saw it.
      if (this.providerToken.renewAfterRejection(p.authorization)) {
        this.log.info('APNs: provider token expired, renewed; resending');
        this.requeue(p, false);
        this.pump();
        return;
      }
      this.log.warn('APNs: provider token reported expired but is younger than 20 minutes: check the clock');
    }
    this.finish(p, outcome);
  }

  /** The stream ended without an answer: the connection failed or the server refused it. */
  unanswered(p: Pending, rstCode: number, reason: string): void {
    if (rstCode === constants.NGHTTP2_REFUSED_STREAM) {
      // RFC 9113 §8.7: REFUSED_STREAM means the request was not processed and can be retried.
      this.requeue(p, true);
    } else if (p.connectionResends === 0) {
      // A pass update notification is idempotent: resend once on a new session.
      p.connectionResends++;
      this.requeue(p, false);
    } else {
      this.finish(p, { kind: 'retry', reason: `ConnectionError: ${reason}` });
      return;
    }
    this.pump();
  }

  timedOut(p: Pending): void {
    const stream = p.stream;
    this.finish(p, { kind: 'retry', reason: 'Timeout' });
    // The slot is released when the stream actually closes.
    if (stream && !stream.closed) stream.close(constants.NGHTTP2_CANCEL);
  }

  streamClosed(c: Connection): void {
    c.active--;
    if (c.retired && c.active === 0 && !c.session.closed) c.session.close();
    this.pump();
  }

  // ---- sessions ----

  private ensureConnections(): void {
    // While backing off after a failed connection, requests wait (their timeout still runs).
    if (this.reconnectTimer) return;
    while (this.pool.length < this.maxConnections) this.openConnection();
  }

  private openConnection(): void {
    // node:http2 opens the TLS connection itself: ALPN h2, and SNI with the origin's host name (none for an
    // IP address, RFC 6066; the certificate is then checked against the IP).
    const session = connectHttp2(this.url, {
      secureContext: this.secureContext,
      settings: { enablePush: false },
    });
    const c = new Connection(this, this.nextConnectionId++, session);
    this.pool.push(c);
    this.open.add(c);
    session.on('remoteSettings', (settings: Settings) => this.onRemoteSettings(c, settings));
    session.on('goaway', (code: number, lastStreamID: number, data?: Buffer) =>
      this.onGoaway(c, code, lastStreamID, data),
    );
    session.on('error', (error: Error) => this.retire(c, `session error: ${errorCode(error)}`));
    session.on('close', () => this.onSessionClose(c));
    session.unref();
  }

  private onRemoteSettings(c: Connection, settings: Settings): void {
    // APNs may allow one stream until it has seen a valid provider token, then raise the limit.
    const remote = settings.maxConcurrentStreams ?? this.cap;
    c.limit = Math.min(remote, this.cap);
    if (!c.ready) {
      c.ready = true;
      this.connectFailures = 0;
      this.startPing(c);
      this.log.debug({ connection: c.id, maxConcurrentStreams: remote }, 'APNs: session ready');
    }
    this.pump();
  }

  private onGoaway(c: Connection, code: number, lastStreamID: number, data: Buffer | undefined): void {
    // A server may send GOAWAY twice (announce, then close) with the same or a lower lastStreamID.
    // APNs puts a JSON {"reason": …} in the debug data; it names no token.
    if (!c.retired) {
      const debug =
        data && data.length > 0 ? data.toString('utf8', 0, Math.min(data.length, 200)) : undefined;
      this.log.info({ connection: c.id, code, lastStreamID, debug }, 'APNs: GOAWAY received');
    }
    this.retire(c, 'goaway');
    // RFC 9113 §6.8: streams above lastStreamID were not processed and can be retried on a new session.
    for (const p of [...c.inFlight]) {
      const id = p.stream?.id;
      if (id === undefined || id > lastStreamID) this.requeue(p, true);
    }
    this.pump();
  }

  /** The session takes no new requests; open ones finish, then it closes. */
  retire(c: Connection, why: string): void {
    if (!c.retired) {
      c.retired = true;
      if (why !== 'goaway' && !this.closing)
        this.log.warn({ connection: c.id, why }, 'APNs: session retired');
    }
    const index = this.pool.indexOf(c);
    if (index >= 0) this.pool.splice(index, 1);
    if (c.active === 0 && !c.session.closed && !c.session.destroyed) c.session.close();
  }

  private onSessionClose(c: Connection): void {
    this.stopPing(c);
    this.retire(c, 'closed');
    this.open.delete(c);
    if (!c.ready) this.onConnectFailure();
    // Streams normally close first; any still tracked failed with the connection.
    for (const p of [...c.inFlight]) this.unanswered(p, constants.NGHTTP2_CANCEL, 'session closed');
    this.pump();
  }

  /** A session failed before its SETTINGS: back off before reconnecting, fail waiting requests fast. */
  private onConnectFailure(): void {
    this.connectFailures++;
    if (this.pool.length === 0) this.failQueuedIfNoConnection('ConnectionFailed');
    const delay = Math.min(MAX_RECONNECT_DELAY_MS, 100 * 2 ** (this.connectFailures - 1));
    if (!this.reconnectTimer) {
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = undefined;
        this.pump();
      }, delay);
      this.reconnectTimer.unref();
    }
  }

  private failQueuedIfNoConnection(reason: string): void {
    if (this.pool.some((c) => c.ready && !c.retired)) return;
    for (let p = this.peek(); p; p = this.peek()) {
      this.take();
      this.finish(p, { kind: 'retry', reason });
    }
  }

  private startPing(c: Connection): void {
    if (this.pingIntervalMs <= 0) return;
    c.pingTimer = setInterval(() => this.ping(c), this.pingIntervalMs);
    c.pingTimer.unref();
  }

  private stopPing(c: Connection): void {
    if (c.pingTimer) clearInterval(c.pingTimer);
    c.pingTimer = undefined;
  }

  /** Health check: a session whose ping failed, or was not answered within an interval, is replaced. */
  private ping(c: Connection): void {
    if (c.session.destroyed || c.session.closed) return;
    if (c.pingOutstanding) {
      this.destroyConnection(c, 'ping not answered');
      return;
    }
    c.pingOutstanding = true;
    const sent = c.session.ping((error) => {
      c.pingOutstanding = false;
      if (error) this.destroyConnection(c, `ping failed: ${errorCode(error)}`);
    });
    if (!sent) this.destroyConnection(c, 'ping not sent');
  }

  private destroyConnection(c: Connection, why: string): void {
    this.retire(c, why);
    c.session.destroy();
  }

  private closeConnection(c: Connection): Promise<void> {
    this.stopPing(c);
    if (c.session.closed || c.session.destroyed) {
      return c.session.destroyed ? Promise.resolve() : new Promise((r) => c.session.once('close', r));
    }
    return new Promise((resolve) => c.session.close(() => resolve()));
  }
}

// Shared stream listeners (no closures per request); `this` is the stream.

function onResponse(this: TrackedStream, headers: IncomingHttpHeaders & IncomingHttpStatusHeader): void {
  const p = this[kPending];
  if (!p) return;
  const status: unknown = headers[constants.HTTP2_HEADER_STATUS];
  p.status = typeof status === 'number' ? status : 0;
  const apnsId = headers['apns-id'];
  p.apnsId = typeof apnsId === 'string' ? apnsId : undefined;
}

function onData(this: TrackedStream, chunk: Buffer | string): void {
  const p = this[kPending];
  if (p) p.body += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
}

function onStreamError(this: TrackedStream, error: Error): void {
  const p = this[kPending];
  if (p) p.body = errorCode(error);
}

function onStreamClose(this: TrackedStream): void {
  const c = this[kConnection];
  if (!c) return;
  const client = c.client;
  const p = this[kPending];
  if (p && !p.done) {
    if (p.status !== 0) client.answered(p);
    else client.unanswered(p, this.rstCode ?? constants.NGHTTP2_CANCEL, p.body || `rst ${this.rstCode}`);
  }
  client.streamClosed(c);
}

function onTimeout(client: Client, p: Pending): void {
  if (!p.done) client.timedOut(p);
}

function errorCode(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code ?? error.message;
  }
  return String(error);
}

/** One TLS context for every session: client certificate (certificate auth) and extra CA. */
function buildSecureContext(o: ApnsClientOptions): SecureContext {
  const context =
    o.auth.kind === 'certificate'
      ? createSecureContext({ cert: o.auth.certPem, key: o.auth.keyPem, passphrase: o.auth.passphrase })
      : createSecureContext({});
  if (o.ca !== undefined) addCaCertificate(context, o.ca);
  return context;
}

interface NativeSecureContext {
  addCACert(pem: string): void;
}

/**
 * Adds a CA to Node's default trust store (bundled roots + NODE_EXTRA_CA_CERTS) instead of replacing it:
 * passing `ca` to `createSecureContext` would drop both. `addCACert` is the method Node itself calls for
 * each `ca` entry.
 */
function addCaCertificate(context: SecureContext, pem: string): void {
  const native: unknown = context.context;
  if (typeof native === 'object' && native !== null && 'addCACert' in native) {
    (native as NativeSecureContext).addCACert(pem);
    return;
  }
  throw new Error('APNs client: cannot add a CA certificate to the TLS context');
}

export function createApnsClient(o: ApnsClientOptions): ApnsClient {
  return new Client(o);
}
