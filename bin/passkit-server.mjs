#!/usr/bin/env node
// The `passkit-server` command (doctor | validate | simulate). Runs the compiled CLI when `npm run build`
// has produced dist/, otherwise the TypeScript sources through tsx (a runtime dependency), so
// `npx passkit-server …` works in a fresh checkout without a build.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'src', 'cli', 'main.js');
if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(root, 'src', 'cli', 'main.ts')).href);
}
