import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import * as glue from '@prisma/schema-engine-wasm/schema_engine_bg';

export type SchemaEngine = glue.SchemaEngine;

let instantiated = false;

// Node 20 has WebAssembly at run time, but @types/node does not declare it (it lives in TypeScript's DOM lib).
interface WasmInstance {
  exports: Record<string, unknown>;
}
interface WasmApi {
  Module: new (bytes: Buffer) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => WasmInstance;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/*
 * Prisma's own schema engine, compiled to WebAssembly: it applies and diffs migrations exactly as
 * `prisma migrate` does, without the native binary that Prisma's CLI would download. Its package entry imports
 * the .wasm file directly (an experimental flag on Node 20), so the module is compiled here and wired to the
 * glue by hand.
 */
function instantiateOnce(): void {
  if (instantiated) return;
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve('@prisma/schema-engine-wasm/schema_engine_bg'));
  const module = new wasmApi.Module(readFileSync(join(dir, 'schema_engine_bg.wasm')));
  const imports: Record<string, unknown> = { ...glue };
  // The engine arms a 10 s timer per command; unref it so that a finished command does not hold the process.
  for (const name of Object.keys(glue).filter((key) => key.startsWith('__wbg_setTimeout_'))) {
    const original = imports[name] as (callback: () => void, ms: number) => NodeJS.Timeout;
    imports[name] = (callback: () => void, ms: number) => original(callback, ms).unref();
  }
  const instance = new wasmApi.Instance(module, { './schema_engine_bg.js': imports });
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
