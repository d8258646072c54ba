import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import pino, { type Logger } from 'pino';

export type { Logger };

/** Secrets never reach the logs: these paths are replaced wherever they appear in a log line. */
const redactedPaths = [
  'req.headers.authorization',
  'headers.authorization',
  '*.authenticationToken',
  'authenticationToken',
  '*.pushToken',
  'pushToken',
  '*.adminToken',
  'adminToken',
  '*.signerKey',
  '*.keyPem',
  '*.signerKeyPassphrase',
];

/** A short, stable stand-in for an identifier that is a secret (Apple makes deviceLibraryIdentifier one). */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 8);
}

/**
 * The request URL without secrets: device library identifiers fingerprinted, link signatures dropped. Matched
 * segment by segment on the decoded text, because the router also serves an absolute-form target
 * (`GET http://host/v1/devices/…`), percent-encoded letters (`/v1/%64evices/…`, `?%73ignature=`) and repeated
 * parameters, which a match on the raw `/v1/devices/` prefix and the first `signature=` let through.
 */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf('?');
  const segments = (queryStart === -1 ? url : url.slice(0, queryStart)).split('/');
  const path = segments
    .map((segment, i) =>
      i > 0 && isNamed(segments[i - 1], 'devices') ? `~${fingerprint(segment)}` : segment,
    )
    .join('/');
  if (queryStart === -1) return path;
  const query = url
    .slice(queryStart + 1)
    .split('&')
    .map((pair) => {
      const key = pair.split('=', 1)[0] ?? '';
      return isNamed(key, 'signature') ? `${key}=[redacted]` : pair;
    })
    .join('&');
  return `${path}?${query}`;
}

function isNamed(text: string | undefined, name: string): boolean {
  if (text === undefined) return false;
  try {
    return decodeURIComponent(text).toLowerCase() === name;
  } catch {
    return text.toLowerCase() === name;
  }
}

/*
 * Always JSON lines, also in development on a terminal: pino-pretty is not a dependency, and one format is what
 * log collectors parse. `destination` is for tests (stdout otherwise).
 */
export function createLogger(options: {
  level: string;
  pretty?: boolean;
  destination?: pino.DestinationStream;
}): Logger {
  const pinoOptions: pino.LoggerOptions = {
    level: options.level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    serializers: {
      // Fastify passes its request: `ip` is the client's address (X-Forwarded-For's when TRUST_PROXY trusts the peer).
      req: (request: IncomingMessage & { id?: string; ip?: string }) => ({
        id: request.id,
        method: request.method,
        url: redactUrl(request.url ?? ''),
        remoteAddress: request.ip ?? request.socket?.remoteAddress,
      }),
    },
  };
  return options.destination ? pino(pinoOptions, options.destination) : pino(pinoOptions);
}
