import type { FastifySchema } from 'fastify';
import { z } from 'zod';

/*
 * What routes add to their schema for the OpenAPI document (src/plugins/external/swagger.ts): tag, operationId,
 * summary, security, the error answers and the answers' headers. Security is not only documentation:
 * src/plugins/app/failed-auth.ts treats a route that declares a requirement as one that needs credentials (failed
 * authentications there are counted and, past the limit, refused); `security: []` says a route takes none.
 */

/** Names of the security schemes declared in src/plugins/external/swagger.ts. */
export const securitySchemes = { admin: 'adminToken', wallet: 'applePass' } as const;

type Tag = 'Admin' | 'Wallet' | 'Ops';
type Credentials = (typeof securitySchemes)[keyof typeof securitySchemes] | 'none';

function operationDoc(
  tag: Tag,
  operationId: string,
  summary: string,
  credentials: Credentials,
  description: string | undefined,
) {
  return {
    tags: [tag],
    operationId,
    summary,
    ...(description ? { description } : {}),
    security: credentials === 'none' ? [] : [{ [credentials]: [] }],
  };
}

/** Apple's PassKit web service: `security` only on the endpoints that take `Authorization: ApplePass <token>`. */
export function walletDoc(
  operationId: string,
  summary: string,
  options: { authenticated: boolean; description?: string },
) {
  const credentials = options.authenticated ? securitySchemes.wallet : 'none';
  return operationDoc('Wallet', operationId, summary, credentials, options.description);
}

/** The admin API: every route takes `Authorization: Bearer $ADMIN_TOKEN`. */
export function adminDoc(operationId: string, summary: string, description?: string) {
  return operationDoc('Admin', operationId, summary, securitySchemes.admin, description);
}

/** A pass's signed download link: no token, the link's signature is the credential. */
export function downloadLinkDoc(operationId: string, summary: string) {
  return operationDoc('Admin', operationId, summary, 'none', undefined);
}

export function opsDoc(operationId: string, summary: string, description?: string) {
  return operationDoc('Ops', operationId, summary, 'none', description);
}

/** The JSON body of every error answer (app.ts maps every error to it). */
export const errorBodySchema = z
  .object({
    statusCode: z.number().int(),
    error: z.string().meta({ examples: ['invalid', 'unauthorized', 'not_found', 'too_many_requests'] }),
    message: z.string(),
  })
  .meta({ description: 'An error: a stable code and a message that names the field or value at fault' });

/** What each error status means here; the body is errorBodySchema for all of them. */
const errorDescriptions = {
  400: 'Invalid request: the message names the field or value at fault',
  401: 'Missing or wrong credentials',
  403: 'The download link is not valid (wrong signature, or another pass)',
  404: 'No such pass or job',
  409: 'A pass with this serial number exists (conflict), or the signing certificate has expired (certificate_expired)',
  410: 'The download link has expired',
  413: 'The request body is larger than this route takes',
  415: "The request body's Content-Type is not the route's: application/json (image/png for a pass's images)",
  429: 'Too many requests, or too many failed authentications, from this client; Retry-After says when to return',
  503: 'The server is shutting down or cannot take the request now; retry (after Retry-After when given)',
} as const;

type ErrorStatus = keyof typeof errorDescriptions;

/**
 * Error answers keyed by status code, for `response`. The same schema serializes them, and it matches what the
 * error handler writes, so declaring them changes nothing on the wire. Every route can answer 503 while the server
 * closes (app.ts: return503OnClosing); routes under the request limits add 429, routes with a body 413 and 415
 * (Fastify's body limit and content-type parsers): see commonErrors and bodyErrors.
 */
export function errorResponses<const Code extends ErrorStatus>(...codes: Code[]) {
  return Object.fromEntries(
    codes.map((code) => [code, errorBodySchema.meta({ description: errorDescriptions[code] })]),
  ) as Record<Code, typeof errorBodySchema>;
}

/** What any route under the request limits can answer, besides its own errors. */
export const commonErrors = [429, 503] as const;
/** What a route that takes a JSON body can answer besides: too large, or not JSON. */
export const bodyErrors = [413, 415] as const;

/** A response header, as @fastify/swagger takes it: a JSON schema with its description. */
interface HeaderDoc {
  type: 'string' | 'integer';
  description: string;
}

export const responseHeaders = {
  lastModified: {
    type: 'string',
    description:
      "The pass version's time, as an HTTP date (RFC 9110); Wallet sends it back as If-Modified-Since",
  },
  location: { type: 'string', description: 'Where to follow the job: /admin/bulk/{jobId}' },
} satisfies Record<string, HeaderDoc>;

const requestIdHeader: HeaderDoc = {
  type: 'string',
  description:
    'The request id, in every log line of the request (the client\'s own x-request-id when it is 1-128 of "A-Za-z0-9._:-")',
};
const retryAfterHeader: HeaderDoc = {
  type: 'integer',
  description: 'Seconds to wait before retrying (RFC 9110 delay-seconds)',
};

/** A file answer, documented by content type (Fastify sends the Buffer as is, unserialized). */
export function fileResponse(
  description: string,
  contentType: string,
  headers: Record<string, HeaderDoc> = {},
) {
  return {
    description,
    headers,
    // Described by hand: zod has no schema for a Buffer that JSON Schema can express.
    content: { [contentType]: { schema: z.unknown().meta({ type: 'string', format: 'binary' }) } },
  };
}

/** A signed .pkpass answer. */
export function pkpassResponse(headers: Record<string, HeaderDoc> = {}) {
  return fileResponse('The signed pass bundle', 'application/vnd.apple.pkpass', headers);
}

/** An answer without a body (204, 304). */
export const noBody = (description: string, headers: Record<string, HeaderDoc> = {}) =>
  z.undefined().meta({ description, headers });

type ResponseDocs = Record<string, Record<string, unknown>>;

/**
 * The headers of each documented answer, for the document only (swagger.ts runs it after the zod transform): what
 * the answer declared itself (the transform keeps no `headers` of a response given by content type, so they are
 * taken from the route's own schema), x-request-id on every answer (src/plugins/app/request-id.ts) and Retry-After
 * on 429 and 503.
 */
export function withAnswerHeaders(declared: FastifySchema | undefined, transformed: FastifySchema) {
  const given = (declared?.response ?? {}) as Record<string, { headers?: unknown }>;
  const answers = transformed.response as ResponseDocs | undefined;
  if (!answers) return transformed;
  const response = Object.fromEntries(
    Object.entries(answers).map(([status, answer]) => {
      const headers = {
        ...(answer.headers as Record<string, HeaderDoc> | undefined),
        ...(given[status]?.headers as Record<string, HeaderDoc> | undefined),
        ...(status === '429' || status === '503' ? { 'retry-after': retryAfterHeader } : {}),
        'x-request-id': requestIdHeader,
      };
      return [status, { ...answer, headers }];
    }),
  );
  return { ...transformed, response };
}
