/**
 * Child process of bench/apns.ts: runs test/support/mock-apns.ts (`record: false`) and counts, per scenario,
 * the distinct push tokens it answered 200 (from each stream's sent headers, when the stream closes).
 */
import { EventEmitter } from 'node:events';
import type { OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { type MockApns, startMockApns } from '../test/support/mock-apns.js';
import type { FromMock, MockStats, ToMock } from './apns-protocol.js';

let mock: MockApns | undefined;
let acked = new Set<string>();
let ok = 0;
let errors: Record<string, number> = {};
let base = { sessions: 0, goaways: 0, refused: 0 };

function reply(message: FromMock): void {
  process.send?.(message);
}

function onStream(stream: ServerHttp2Stream, headers: Record<string, string | string[] | undefined>): void {
  const path = headers[':path'];
  stream.once('close', () => {
    // A refused or reset stream has no sent headers.
    const sent: OutgoingHttpHeaders | undefined = stream.sentHeaders;
    const status = sent?.[':status'];
    if (status === undefined) return;
    if (status === 200) {
      ok++;
      if (typeof path === 'string') acked.add(path);
    } else {
      const key = String(status);
      errors[key] = (errors[key] ?? 0) + 1;
    }
  });
}

async function handle(message: ToMock): Promise<void> {
  if (message.type === 'start') {
    mock = await startMockApns({
      publicKeyPem: message.publicKeyPem,
      keyId: message.keyId,
      teamId: message.teamId,
      record: false,
    });
    // The mock's server is not part of its interface; listen to its streams next to the mock's own handler.
    const server: unknown = Reflect.get(mock, 'server');
    if (!(server instanceof EventEmitter)) throw new Error('mock-apns: no server to observe');
    server.on('stream', onStream);
    reply({ type: 'ready', origin: mock.origin, caPem: mock.caPem });
    return;
  }
  if (!mock) throw new Error('mock not started');
  if (message.type === 'configure') {
    const s = message.scenario;
    mock.setLatencyMs(s.latencyMs);
    mock.goawayAfterStreams(s.goawayAfterStreams);
    mock.setFaultRates({ internalServerError: s.internalServerError, tooManyRequests: s.tooManyRequests });
    acked = new Set();
    ok = 0;
    errors = {};
    base = { sessions: mock.stats.sessions, goaways: mock.stats.goaways, refused: mock.stats.refused };
    reply({ type: 'configured' });
    return;
  }
  const stats: MockStats = {
    acked: acked.size,
    ok,
    errors,
    sessions: mock.stats.sessions - base.sessions,
    goaways: mock.stats.goaways - base.goaways,
    refused: mock.stats.refused - base.refused,
  };
  reply({ type: 'stats', stats });
}

process.on('message', (message) => {
  handle(message as ToMock).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
});
process.on('disconnect', () => {
  void mock?.close().finally(() => process.exit(0));
});
