import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
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
 * A template's files are copied once into shared memory, so posting a pass hands the worker a view, not a copy of
 * its images. Templates and identities carry a number, under which each worker keeps them: its digests of a
 * template's files and its parsed key stay warm from one pass to the next.
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

/** A template as posted to a worker: its files are views over one SharedArrayBuffer. */
export interface SharedTemplate extends Omit<Template, 'files'> {
  id: number;
  files: Record<string, Uint8Array>;
}

/** main → worker */
export interface SignTask {
  content: Omit<PassContent, 'template'>;
  template: SharedTemplate;
  identityId: number;
  identity: SigningIdentity;
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
  const templates = new WeakMap<Template, SharedTemplate>();
  const identityIds = new WeakMap<SigningIdentity, number>();
  let nextId = 1;
  let pool: Piscina<SignTask, SignResult> | undefined;

  function shared(template: Template): SharedTemplate {
    let posted = templates.get(template);
    if (posted === undefined) {
      posted = { ...template, id: nextId++, files: sharedFiles(template.files) };
      templates.set(template, posted);
    }
    return posted;
  }

  function identityId(identity: SigningIdentity): number {
    let id = identityIds.get(identity);
    if (id === undefined) {
      id = nextId++;
      identityIds.set(identity, id);
    }
    return id;
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
        template: shared(template),
        identityId: identityId(identity),
        identity,
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

function sharedFiles(files: Readonly<Record<string, Buffer>>): Record<string, Uint8Array> {
  const entries = Object.entries(files);
  const memory = new SharedArrayBuffer(entries.reduce((total, [, data]) => total + data.byteLength, 0));
  const views: Record<string, Uint8Array> = {};
  let offset = 0;
  for (const [name, data] of entries) {
    const view = new Uint8Array(memory, offset, data.byteLength);
    view.set(data);
    views[name] = view;
    offset += data.byteLength;
  }
  return views;
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
