#!/usr/bin/env node
/*
 * npm's postinstall: writes the Prisma client into src/db/generated with `prisma generate`.
 *
 * A production install skips it: the prisma CLI is a dev dependency, and `npm run build` has already compiled
 * the generated client into dist/. npm still installs the CLI with `--omit=dev` alone (it is also an optional
 * peer of @prisma/client), so a folder with dist/ and no src/ (a compiled installation) skips it too, rather
 * than generating into a src/ nobody runs. (The Dockerfile's build stage installs before copying src/: it has
 * neither, and generates.)
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(join(root, 'package.json'));

function prismaCli() {
  try {
    const manifestPath = require.resolve('prisma/package.json');
    const manifest = require(manifestPath);
    const bin = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin?.prisma;
    return bin ? join(dirname(manifestPath), bin) : undefined;
  } catch {
    return undefined;
  }
}

const cli = prismaCli();
const compiledInstallation = existsSync(join(root, 'dist')) && !existsSync(join(root, 'src'));
if (cli === undefined || compiledInstallation) {
  const why = compiledInstallation
    ? 'dist/ without src/ (a compiled installation)'
    : 'no prisma CLI installed';
  const client = existsSync(join(root, 'dist', 'src', 'db', 'generated', 'client.js'))
    ? 'dist/ already contains the compiled Prisma client.'
    : 'the Prisma client comes compiled in dist/ from `npm run build` (run where dev dependencies are installed).';
  console.log(`postinstall: skipping prisma generate (${why}); ${client}`);
  process.exit(0);
}

// The same Node that runs npm runs the CLI, so no PATH lookup or shell is involved.
const result = spawnSync(process.execPath, [cli, 'generate'], { cwd: root, stdio: 'inherit' });
if (result.error) throw result.error;
process.exit(result.status ?? 1);
