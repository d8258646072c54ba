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

/** The request URL without secrets: device library identifiers fingerprinted, link signatures dropped. */
export function redactUrl(url: string): string {
  return url
    .replace(/^(\/v1\/devices\/)([^/?]+)/, (_, prefix: string, id: string) => `${prefix}~${fingerprint(id)}`)
    .replace(/([?&]signature=)[^&]*/, '$1[redacted]');
}

export function createLogger(options: { level: string; pretty?: boolean }): Logger {
  return pino({
    level: options.level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    serializers: {
      req: (request: IncomingMessage & { id?: string }) => ({
        id: request.id,
        method: request.method,
        url: redactUrl(request.url ?? ''),
        remoteAddress: request.socket?.remoteAddress,
      }),
    },
  });
}
