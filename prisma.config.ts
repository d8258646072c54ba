import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'prisma/config';

/*
 * Prisma's CLI downloads its native schema engine before `generate`, `validate` and `format`, although those
 * never run it. Where its binary host cannot be reached (as on our machines), pointing
 * PRISMA_SCHEMA_ENGINE_BINARY at a stub skips the download. Only for those three commands: `migrate` keeps the
 * real engine where there is one. Offline migrations: `npm run db:migrate` / `npm run db:migration:create`.
 */
const commandsThatNeverRunTheEngine = new Set(['generate', 'validate', 'format']);
if (commandsThatNeverRunTheEngine.has(process.argv[2] ?? '') && !process.env.PRISMA_SCHEMA_ENGINE_BINARY) {
  const dir = join(tmpdir(), 'passkit-server-prisma');
  const stub = join(dir, 'schema-engine-stub');
  if (!existsSync(stub)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(stub, '#!/bin/sh\necho "use npm run db:migrate (offline schema engine)" >&2\nexit 1\n', {
      mode: 0o755,
    });
  }
  process.env.PRISMA_SCHEMA_ENGINE_BINARY = stub;
}

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
