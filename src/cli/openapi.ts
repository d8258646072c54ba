import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildApp } from '../app.js';
import { openDatabase } from '../db/database.js';
import { createTemplateCatalog } from '../passes/template-catalog.js';
import { loadTemplates } from '../passes/templates.js';
import { projectRoot } from '../paths.js';
import { createIdentities } from '../signing/identities.js';
import { loadSigningIdentity } from '../signing/identity.js';
import { createSigner } from '../signing/signer.js';

const USAGE = `usage: passkit-server openapi [--public-url <url>]

Prints the OpenAPI document (what /docs/json serves) as JSON, without a server or a database.
`;

/**
 * The document /docs/json serves, from the app itself: built as server.ts builds it, with every role and a
 * development identity in a temporary folder. It never listens and serves no request, since the document depends
 * only on the routes' schemas (src/plugins/external/swagger.ts); so its database is one that is never reached: a
 * PostgreSQL pool on a socket folder that does not exist (connecting fails at once, without any network), not an
 * embedded database, whose start takes many seconds.
 */
export async function openApiDocument(publicUrl: string): Promise<unknown> {
  const log = pino({ level: 'silent' });
  const dataDir = await mkdtemp(join(tmpdir(), 'passkit-openapi-'));
  const database = await openDatabase({
    databaseUrl: `postgres://openapi@localhost/openapi?host=${encodeURIComponent(join(dataDir, 'no-database'))}`,
    dataDir,
    log,
    migrate: false,
  });
  const signer = createSigner({ threads: 1 });
  try {
    const identity = await loadSigningIdentity({
      certificatesDir: join(dataDir, 'certificates'),
      dataDir,
      production: false,
      log,
    });
    const { templates } = await loadTemplates(join(projectRoot, 'models'));
    const app = await buildApp({
      database,
      repositories: database.repositories,
      templates: createTemplateCatalog({
        files: templates,
        repository: database.repositories.templates,
        identifiers: () => identity,
        clock: { now: () => new Date() },
      }),
      // Never loaded: the document reads no identity, and this database is never reached.
      identities: createIdentities({
        configured: [identity],
        repository: database.repositories.identities,
        encryptionKey: undefined,
        production: false,
        clock: { now: () => new Date() },
        log,
      }),
      signer,
      clock: { now: () => new Date() },
      webServiceURL: publicUrl,
      log,
      // Signs download links only; no link is made here.
      adminToken: 'openapi-document-only',
      publicUrl,
      downloadLinkTtlSeconds: 3600,
    });
    await app.ready();
    const document = app.swagger();
    await app.close();
    return document;
  } finally {
    await signer.close();
    await database.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export async function runOpenApi(args: string[]): Promise<number> {
  let publicUrl = 'http://localhost:3000';
  for (let i = 0; i < args.length; i++) {
    const value = args[i + 1];
    if (args[i] === '--public-url' && value) {
      publicUrl = value;
      i++;
    } else {
      const help = args[i] === '--help' || args[i] === '-h';
      (help ? process.stdout : process.stderr).write(USAGE);
      return help ? 0 : 2;
    }
  }
  process.stdout.write(`${JSON.stringify(await openApiDocument(publicUrl), null, 2)}\n`);
  return 0;
}
