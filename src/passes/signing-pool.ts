import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { InvalidError } from '../errors.js';
import type { PassContent } from './bundle.js';
import type { SigningIdentity } from './signing-identity.js';
import type { Template } from './templates.js';

/*
 * Building a signed bundle costs about half a millisecond of CPU (Joi validation in passkit-generator, SHA-1s,
 * an RSA signature, the zip). On the event loop that would hold up every request behind a bulk change, so it
 * runs in a few worker threads (one per core by default). The main thread only posts the pass content and gets
 * the bundle's bytes back as a transferred buffer.
 *
 * Templates and identities are posted to a worker once and named by a number afterwards; the worker keeps them,
 * so its per-template digests and per-identity parsed key stay warm. A worker holds the process open only while
 * it has work (ref'd while busy, unref'd when idle), so nothing needs closing for a process to exit; close()
 * ends the workers at once, for a graceful shutdown or a test.
 */

export interface SigningPool {
  /** The .pkpass of this content; rejects with InvalidError when Wallet or passkit-generator would refuse it. */
  sign(content: PassContent, identity: SigningIdentity): Promise<Buffer>;
  /** Ends every worker; passes still being signed reject. The pool starts new workers if used again. */
  close(): Promise<void>;
}

/** main → worker */
export interface SignRequest {
  id: number;
  content: Omit<PassContent, 'template'>;
  templateId: number;
  /** Posted with the first request a worker gets for this template. */
  template?: Template;
  identityId: number;
  /** Posted with the first request a worker gets for this identity. */
  identity?: SigningIdentity;
}

/** worker → main */
export type SignResponse =
  | { id: number; ok: true; bytes: Uint8Array }
  | { id: number; ok: false; invalid: boolean; message: string; stack?: string | undefined };

interface Pending {
  resolve: (bytes: Buffer) => void;
  reject: (error: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  pending: Map<number, Pending>;
  templates: Set<number>;
  identities: Set<number>;
}

export interface SigningPoolOptions {
  /** Worker threads; the number of cores by default, at least 1. */
  size?: number;
}

export function createSigningPool(options: SigningPoolOptions = {}): SigningPool {
  const size = Math.max(1, options.size ?? availableParallelism());
  const workers: PoolWorker[] = [];
  const templateIds = new WeakMap<Template, number>();
  const identityIds = new WeakMap<SigningIdentity, number>();
  let nextId = 1;

  function idOf<T extends object>(ids: WeakMap<T, number>, value: T): number {
    let id = ids.get(value);
    if (id === undefined) {
      id = nextId++;
      ids.set(value, id);
    }
    return id;
  }

  function start(): PoolWorker {
    const state: PoolWorker = {
      worker: spawnWorker(),
      pending: new Map(),
      templates: new Set(),
      identities: new Set(),
    };
    state.worker.unref();
    state.worker.on('message', (response: SignResponse) => settle(state, response));
    // A worker that dies takes its passes with it: they reject, and the next sign starts a fresh worker.
    const fail = (error: Error) => {
      const at = workers.indexOf(state);
      if (at >= 0) workers.splice(at, 1);
      for (const pending of state.pending.values()) pending.reject(error);
      state.pending.clear();
    };
    state.worker.on('error', fail);
    state.worker.on('exit', (code) => fail(new Error(`signing worker exited (code ${code})`)));
    workers.push(state);
    return state;
  }

  function settle(state: PoolWorker, response: SignResponse): void {
    const pending = state.pending.get(response.id);
    if (pending === undefined) return;
    state.pending.delete(response.id);
    if (state.pending.size === 0) state.worker.unref();
    if (response.ok) {
      pending.resolve(Buffer.from(response.bytes.buffer, response.bytes.byteOffset, response.bytes.length));
    } else if (response.invalid) {
      pending.reject(new InvalidError(response.message));
    } else {
      const error = new Error(response.message);
      if (response.stack !== undefined) error.stack = response.stack;
      pending.reject(error);
    }
  }

  /** The least busy worker; a new one while the pool is below its size and every worker has work. */
  function pick(): PoolWorker {
    let best: PoolWorker | undefined;
    for (const state of workers) {
      if (best === undefined || state.pending.size < best.pending.size) best = state;
    }
    if (best === undefined || (best.pending.size > 0 && workers.length < size)) return start();
    return best;
  }

  return {
    sign(content, identity) {
      const state = pick();
      const { template, ...rest } = content;
      const request: SignRequest = {
        id: nextId++,
        content: rest,
        templateId: idOf(templateIds, template),
        identityId: idOf(identityIds, identity),
      };
      if (!state.templates.has(request.templateId)) request.template = template;
      if (!state.identities.has(request.identityId)) request.identity = identity;
      return new Promise<Buffer>((resolve, reject) => {
        try {
          state.worker.postMessage(request);
        } catch (error) {
          // Content that cannot be cloned (a function, a symbol): refused here, the worker never saw it.
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        state.templates.add(request.templateId);
        state.identities.add(request.identityId);
        if (state.pending.size === 0) state.worker.ref();
        state.pending.set(request.id, { resolve, reject });
      });
    },
    async close() {
      const closing = workers.splice(0);
      await Promise.all(closing.map((state) => state.worker.terminate()));
    },
  };
}

/**
 * The compiled worker (dist/…/signing-worker.js) starts as is. From the TypeScript sources (tsx, vitest) a
 * worker does not inherit a TypeScript loader reliably, so it registers tsx's before importing the .ts worker.
 */
function spawnWorker(): Worker {
  const fromSources = import.meta.url.endsWith('.ts');
  const entry = new URL(fromSources ? './signing-worker.ts' : './signing-worker.js', import.meta.url);
  if (!fromSources) return new Worker(entry);
  const tsxPackage = pathToFileURL(createRequire(import.meta.url).resolve('tsx/package.json'));
  const tsxApi = new URL('dist/esm/api/index.mjs', tsxPackage).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { eval: true });
}

let shared: SigningPool | undefined;

/** The process's pool, started on first use; buildSignedBundle signs through it. */
export function sharedSigningPool(): SigningPool {
  shared ??= createSigningPool();
  return shared;
}

/** Ends the shared pool's workers (server shutdown); a later sign starts new ones. */
export async function closeSharedSigningPool(): Promise<void> {
  await shared?.close();
}
