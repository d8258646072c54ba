/**
 * The one error family of the service. Services throw these; `app.ts` maps them to HTTP in one place.
 * Messages are shown to the client, so they name the problem and never contain a secret.
 */
export class ServiceError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** 400: the input is not acceptable (names the field or value at fault). */
export class InvalidError extends ServiceError {
  constructor(message: string) {
    super(400, 'invalid', message);
  }
}

/** 401: missing or wrong credentials. Also used for unknown passes on Apple's endpoints, as Apple asks. */
export class UnauthorizedError extends ServiceError {
  constructor(message = 'Missing or wrong authorization') {
    super(401, 'unauthorized', message);
  }
}

/** 403: a credential that is present but not valid for this request (e.g. a tampered download link). */
export class ForbiddenError extends ServiceError {
  constructor(message: string) {
    super(403, 'forbidden', message);
  }
}

export class NotFoundError extends ServiceError {
  constructor(message: string) {
    super(404, 'not_found', message);
  }
}

export class ConflictError extends ServiceError {
  constructor(message: string) {
    super(409, 'conflict', message);
  }
}

/**
 * 409: the pass's signing certificate has expired, so nothing can be signed for it until the certificate is
 * rotated; its passes are still served from the bundles signed before.
 */
export class CertificateExpiredError extends ServiceError {
  constructor(message: string) {
    super(409, 'certificate_expired', message);
  }
}

/** 410: something that existed and is gone for good (e.g. an expired download link). */
export class GoneError extends ServiceError {
  constructor(message: string) {
    super(410, 'gone', message);
  }
}

/** 429: the client sent too many requests, or failed authentication too often; Retry-After says when to return. */
export class TooManyRequestsError extends ServiceError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(429, 'too_many_requests', message);
  }
}

/**
 * 503: the request could not be taken in time (e.g. a change of a pass that other changes of it kept waiting);
 * nothing was changed, and the same request may be sent again after Retry-After.
 */
export class ServiceUnavailableError extends ServiceError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(503, 'unavailable', message);
  }
}

/** A problem that stops the process from starting (configuration, certificates, templates). */
export class StartupError extends Error {
  override name = 'StartupError';
}
