import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import * as glue from '@prisma/schema-engine-wasm/schema_engine_bg';

export type SchemaEngine = glue.SchemaEngine;

let instantiated = false;

// Node has WebAssembly at run time, but @types/node does not declare it (TypeScript does, in its DOM lib only).
interface WasmInstance {
  exports: Record<string, unknown>;
}
declare global {
  const WebAssembly: {
    Module: new (bytes: Uint8Array) => object;
    Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  };
}

/*
 * Prisma's own schema engine, compiled to WebAssembly: it applies and diffs migrations exactly as
 * `prisma migrate` does, without the native binary that Prisma's CLI would download.
 *
 * Which build: prisma 7.10.1 runs the engines of commit d1b3f377 (@prisma/engines-version
 * 8.1.0-1.d1b3f377…: Prisma numbers its engines ahead of its CLI), and no @prisma/schema-engine-wasm was
 * published for that commit. The pinned 8.1.0-2.59be4fda… is the next build of the same engines line, and
 * its .wasm is the one prisma 7.10.1 ships in its own build/ folder, except for the commit name it embeds
 * and the order of six wasm-bindgen imports (compared byte for byte); 7.10.0-4.0edf323e…, the build of the
 * previous release, differs in the SQL schema connector's code.
 *
 * Why not the package's documented entry (`import '@prisma/schema-engine-wasm'`): it imports the .wasm file
 * as an ES module, which Node runs without a flag only from 24 on (engines allow 22) and still marks
 * experimental (a warning on every start); and it leaves no way to adjust the imports: the engine arms a
 * timer per command that `db:migrate` would then wait for after its work is done. So the module is compiled
 * here and wired to the glue by hand.
 */
function instantiateOnce(): void {
  if (instantiated) return;
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve('@prisma/schema-engine-wasm/schema_engine_bg'));
  const module = new WebAssembly.Module(readFileSync(join(dir, 'schema_engine_bg.wasm')));
  const imports: Record<string, unknown> = { ...glue };
  // Unref the engine's per-command timer, so that a finished command does not hold the process.
  for (const name of Object.keys(glue).filter((key) => key.startsWith('__wbg_setTimeout_'))) {
    const original = imports[name] as (callback: () => void, ms: number) => NodeJS.Timeout;
    imports[name] = (callback: () => void, ms: number) => original(callback, ms).unref();
  }
  const instance = new WebAssembly.Instance(module, { './schema_engine_bg.js': imports });
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports.__wbindgen_start as () => void)();
  instantiated = true;
}

export async function openSchemaEngine(
  datamodel: { path: string; content: string },
  adapterFactory: SqlMigrationAwareDriverAdapterFactory,
): Promise<SchemaEngine> {
  instantiateOnce();
  return glue.SchemaEngine.new(
    { datamodels: [[datamodel.path, datamodel.content]] },
    () => {},
    bindMigrationAwareSqlAdapterFactory(adapterFactory),
  );
}
