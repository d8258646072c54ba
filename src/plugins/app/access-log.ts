import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from '../../logger.js';

/**
 * The access log: one `request completed` line per answered request instead of Fastify's two (`incoming request`
 * and `request completed`). Its fields are only these, so no secret can be in it: the request id, the request as the
 * logger's `req` serializer writes it (method, URL with secrets taken out, client address), the status code and the
 * time taken.
 *
 * The app logger's redaction (logger.ts) searches every line for secret keys, a cost per line that counts against
 * answering a pass download from memory. An access line has no such keys, so it is written through a child of the
 * app logger (same destination, serializers and level) without that search. `incoming request` stays, at debug, for
 * following a request that never completes. Errors are logged as Fastify logs them, with the redaction: an error may
 * carry anything.
 */
export class AccessLog extends LogController {
  readonly #access: Logger;

  constructor(log: Logger) {
    super();
    this.#access = log.child({}, { redact: [] });
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
    this.#access.info(
      {
        reqId: request.id,
        req: request,
        res: { statusCode: reply.statusCode },
        responseTime: reply.elapsedTime,
      },
      'request completed',
    );
  }
}
