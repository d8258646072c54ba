import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { serialize } from 'node:v8';
import { Piscina } from 'piscina';
import { InvalidError } from '../errors.js';
import type { Template } from '../passes/templates.js';
import type { PassContent } from './bundle.js';
import type { SigningIdentity } from './identity.js';

/*
 * Building a signed bundle is pure CPU work (Joi validation in passkit-generator, SHA-1s, an RSA signature, the
 * zip). On the event loop it would hold up every request behind a bulk change, so the Signer runs it in a piscina
 * pool of worker threads (one per core by default). The pool starts with the first pass, keeps one thread warm
 * and more while there is work; idle threads are unref'd by piscina, so a process can exit without close().
 *
 * A template (with its images) and an identity are serialised once into shared memory, under a number: posting
 * a pass hands the worker two views and its content, not a copy of the images. Each worker reads a number's value
 * the first time it sees it and keeps it, so its digests of a template's files and its parsed key stay warm.
 */

export interface Signer {
  /** The .pkpass of this content; rejects with InvalidError when Wallet or passkit-generator would refuse it. */
  sign(content: PassContent, identity: SigningIdentity): Promise<Buffer>;
  /** Ends every thread; passes still being signed reject. The signer starts new threads if used again. */
  close(): Promise<void>;
}

export interface SignerOptions {
  /** Worker threads at most; the number of cores by default, at least 1. */
  threads?: number;
}

/** A value serialised (node:v8) into a SharedArrayBuffer, named by a number the worker keeps it under. */
export interface Shared {
  id: number;
  bytes: Uint8Array;
}

/** main → worker: `template` holds a Template, `identity` a SigningIdentity. */
export interface SignTask {
  content: Omit<PassContent, 'template'>;
  template: Shared;
  identity: Shared;
}

/**
 * worker → main: the bundle's bytes, or the message of the InvalidError that refused the pass (an Error subclass
 * does not survive the structured clone between threads; other errors reject the task as they are).
 */
export type SignResult = Uint8Array | { invalid: string };

/** Idle threads beyond the first end after this long, so a burst of passes does not keep every core's thread. */
const IDLE_TIMEOUT_MS = 30_000;

export function createSigner(options: SignerOptions = {}): Signer {
  const threads = Math.max(1, options.threads ?? availableParallelism());
  const templates = new WeakMap<Template, Shared>();
  const identities = new WeakMap<SigningIdentity, Shared>();
  let nextId = 1;
  let pool: Piscina<SignTask, SignResult> | undefined;

  function shared<T extends object>(cache: WeakMap<T, Shared>, value: T): Shared {
    let posted = cache.get(value);
    if (posted === undefined) {
      const serialized = serialize(value);
      const bytes = new Uint8Array(new SharedArrayBuffer(serialized.byteLength));
      bytes.set(serialized);
      posted = { id: nextId++, bytes };
      cache.set(value, posted);
    }
    return posted;
  }

  return {
    async sign(content, identity) {
      pool ??= new Piscina<SignTask, SignResult>({
        ...workerEntry(),
        minThreads: 1,
        maxThreads: threads,
        idleTimeout: IDLE_TIMEOUT_MS,
      });
      const { template, ...rest } = content;
      const result = await pool.run({
        content: rest,
        template: shared(templates, template),
        identity: shared(identities, identity),
      });
      if (result instanceof Uint8Array)
        return Buffer.from(result.buffer, result.byteOffset, result.byteLength);
      throw new InvalidError(result.invalid);
    },
    async close() {
      const closing = pool;
      pool = undefined;
      await closing?.destroy();
    },
  };
}

/**
 * The compiled worker (dist/…/worker.js) runs on plain node. From the TypeScript sources (tsx, vitest) the worker
 * is a .ts file, so its thread preloads tsx's loader, as tsx documents for `node --import tsx`.
 */
function workerEntry(): { filename: string; execArgv?: string[] } {
  if (!import.meta.url.endsWith('.ts')) return { filename: new URL('./worker.js', import.meta.url).href };
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return { filename: new URL('./worker.ts', import.meta.url).href, execArgv: ['--import', tsx] };
}
