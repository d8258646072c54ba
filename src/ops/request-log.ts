import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from '../logger.js';

/**
 * The access log: one `request completed` line per answered request, written by Fastify's routes (through
 * `RequestLog`) and by the pass fast path alike. Its fields are only these, so no secret can be in it: the request
 * id, the request as the logger's `req` serializer writes it (method, URL with secrets taken out, client address),
 * the status code and the time taken.
 */
export interface AccessLine {
  reqId: string;
  /** Fastify's request, or the same fields for a request answered without Fastify. */
  req: { id: string; method?: string; url?: string; ip?: string };
  res: { statusCode: number };
  responseTime: number;
}

export interface AccessLog {
  completed(line: AccessLine): void;
}

/**
 * The app logger's redaction (logger.ts) searches every line for secret keys, a fixed cost of about 10 µs per line
 * that is more than answering a pass download from memory. An access line has no such keys, so it is written through
 * a child of the app logger (same destination, serializers and level) without that search.
 */
export function createAccessLog(log: Logger): AccessLog {
  const access = log.child({}, { redact: [] });
  return {
    completed(line) {
      access.info(line, 'request completed');
    },
  };
}

/**
 * Fastify's request lines as one access line (Fastify writes `incoming request` and `request completed`, each
 * through the redaction). `incoming request` stays, at debug, for following a request that never completes.
 * Errors are logged as Fastify logs them, with the redaction: an error may carry anything.
 */
export class RequestLog extends LogController {
  constructor(private readonly access: AccessLog) {
    super();
  }

  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error) {
      super.requestCompleted(error, request, reply);
      return;
    }
    this.access.completed({
      reqId: request.id,
      req: request,
      res: { statusCode: reply.statusCode },
      responseTime: reply.elapsedTime,
    });
  }
}
