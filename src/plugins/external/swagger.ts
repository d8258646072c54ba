import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import { createJsonSchemaTransform, createJsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { projectRoot } from '../../paths.js';
import { securitySchemes, withAnswerHeaders } from '../../routes/route-docs.js';

/*
 * The OpenAPI 3 document, generated from the zod schemas the routes validate with (fastify-type-provider-zod's
 * transform), so it cannot drift from what the server accepts. Served as JSON at /docs/json and as a page at /docs,
 * unless DOCS_ENABLED turns them off (off by default in production: see docs/configuration.md).
 *
 * The page is the only HTML this server serves. Its scripts, styles and images are @fastify/swagger-ui's own files
 * under /docs/static (no CDN: it works in a closed network), so its content security policy allows this origin
 * only, plus PUBLIC_URL for "Try it out". frame-ancestors 'none' and X-Frame-Options: DENY (for browsers without
 * CSP level 2) keep other sites from framing it (clickjacking).
 */

const docsPrefix = '/docs';

const version = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string })
  .version;

const description = `An Apple Wallet pass server.

- **Admin**: create, change and delete passes (\`Authorization: Bearer $ADMIN_TOKEN\`).
- **Wallet**: Apple's PassKit web service, called by Wallet at the pass's \`webServiceURL\`
  (\`Authorization: ApplePass <authenticationToken>\` on the pass's own endpoints).
- **Ops**: health, readiness and metrics.

Every error answer is \`{statusCode, error, message}\`, and every answer carries \`x-request-id\`. Requests are rate
limited per client address; after too many failed authentications, an address gets 429 with \`Retry-After\` on every
authenticated route.`;

// The zod schemas of each route, as JSON Schema (draft 2020-12 for OpenAPI 3.1: null is a type, not `nullable`).
const zodTransform = createJsonSchemaTransform({ skipList: [] });

export interface DocsOptions {
  publicUrl: string;
  /** DOCS_ENABLED: serve /docs and /docs/json. */
  enabled: boolean;
}

/*
 * The Swagger logo in swagger-ui 5's top bar is an SVG with a <style> block of its own: allowed by that block's hash
 * (as Chromium reports it when it blocks it), not by 'unsafe-inline'. A later swagger-ui with another logo only
 * loses the logo's colours until the hash is updated.
 */
const swaggerLogoStyle = "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='";

/** The page's policy. No 'unsafe-inline': the page loads its scripts and styles from files; data: for the icons. */
function contentSecurityPolicy(publicUrl: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' ${swaggerLogoStyle}`,
    "img-src 'self' data:",
    "font-src 'self' data:",
    `connect-src 'self' ${new URL(publicUrl).origin}`,
    "form-action 'self'",
    "base-uri 'none'",
    "object-src 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** The document and the page; register it before the routes, which it collects as they are added. */
export const swaggerPlugin = fp<DocsOptions>(
  async (app, options) => {
    if (!options.enabled) return;
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: { title: 'passkit-server', version, description, license: { name: 'MIT', identifier: 'MIT' } },
        servers: [{ url: options.publicUrl }],
        tags: [
          { name: 'Admin', description: 'The admin API' },
          { name: 'Wallet', description: "Apple's PassKit web service (what Wallet calls)" },
          { name: 'Ops', description: 'Health, readiness and metrics' },
        ],
        components: {
          securitySchemes: {
            [securitySchemes.admin]: {
              type: 'http',
              scheme: 'bearer',
              description: 'ADMIN_TOKEN',
            },
            // Apple's own scheme name, not Bearer: OpenAPI can only describe it as a whole Authorization header.
            [securitySchemes.wallet]: {
              type: 'apiKey',
              in: 'header',
              name: 'Authorization',
              description: 'ApplePass <authenticationToken> (the token written into the pass)',
            },
          },
        },
      },
      transform: (route) => {
        const transformed = zodTransform(route);
        return { ...transformed, schema: withAnswerHeaders(route.schema, transformed.schema) };
      },
      // Adds the schemas that the routes' schemas refer to (recursive ones, such as the JSON values in userInfo).
      transformObject: createJsonSchemaTransformObject({}),
      // Routes without a tag (none today) are internal; this keeps a forgotten one out of the public document.
      hideUntagged: true,
    });
    // Encapsulated: the frame header is for the page's routes only (swagger-ui's staticCSP hook is scoped to them).
    await app.register(async (docs) => {
      docs.addHook('onSend', (_request, reply, payload, done) => {
        reply.header('x-frame-options', 'DENY');
        done(null, payload);
      });
      await docs.register(swaggerUi, {
        routePrefix: docsPrefix,
        staticCSP: contentSecurityPolicy(options.publicUrl),
      });
    });
  },
  { name: 'swagger', fastify: '5.x' },
);
