import { z } from 'zod';

/*
 * What routes add to their schema for the OpenAPI document (src/plugins/external/swagger.ts): tag, summary, security, and the
 * error answers. Security is not only documentation: src/plugins/app/failed-auth.ts treats a route that declares it as one
 * that needs credentials (failed authentications there are counted and, past the limit, refused).
 */

/** Names of the security schemes declared in src/plugins/external/swagger.ts. */
export const securitySchemes = { admin: 'adminToken', wallet: 'applePass' } as const;

/** Apple's PassKit web service: `security` only on the endpoints that take `Authorization: ApplePass <token>`. */
export function walletDoc(summary: string, options: { authenticated: boolean; description?: string }) {
  return {
    tags: ['Wallet'],
    summary,
    ...(options.description ? { description: options.description } : {}),
    ...(options.authenticated ? { security: [{ [securitySchemes.wallet]: [] }] } : {}),
  };
}

/** The admin API: every route takes `Authorization: Bearer $ADMIN_TOKEN`. */
export function adminDoc(summary: string, description?: string) {
  return {
    tags: ['Admin'],
    summary,
    ...(description ? { description } : {}),
    security: [{ [securitySchemes.admin]: [] }],
  };
}

export function opsDoc(summary: string, description?: string) {
  return { tags: ['Ops'], summary, ...(description ? { description } : {}) };
}

/** The JSON body of every error answer (app.ts maps every error to it). */
export const errorBodySchema = z
  .object({
    statusCode: z.number().int(),
    error: z.string().meta({ examples: ['invalid', 'unauthorized', 'not_found', 'too_many_requests'] }),
    message: z.string(),
  })
  .meta({ description: 'An error: a stable code and a message that names the field or value at fault' });

/**
 * Error answers keyed by status code, for `response`. The same schema serializes them, and it matches what the
 * error handler writes, so declaring them changes nothing on the wire.
 */
export function errorResponses<const Code extends number>(...codes: Code[]) {
  return Object.fromEntries(codes.map((code) => [code, errorBodySchema])) as Record<
    Code,
    typeof errorBodySchema
  >;
}

/** A signed .pkpass answer, documented by content type (Fastify sends the Buffer as is, unserialized). */
export const pkpassResponse = {
  description: 'The signed pass bundle',
  // Described by hand: zod has no schema for a Buffer that JSON Schema can express.
  content: {
    'application/vnd.apple.pkpass': { schema: z.unknown().meta({ type: 'string', format: 'binary' }) },
  },
};

/** An answer without a body (204, 304). */
export const noBody = (description: string) => z.undefined().describe(description);
