import { deserialize } from 'node:v8';
import { move } from 'piscina';
import { InvalidError } from '../errors.js';
import type { Template } from '../passes/templates.js';
import { buildSignedBundle } from './bundle.js';
import type { SigningIdentity } from './identity.js';
import type { Shared, SignResult, SignTask } from './signer.js';

/*
 * One thread of the Signer's piscina pool: builds a bundle and hands its bytes back (moved, not copied).
 * Templates and identities are read once under their number and kept, the same objects for every pass, so the
 * digests of a template's files and an identity's parsed key (cached per object in bundle.ts) are computed once
 * per thread.
 */

/** Enough for every template and identity of an instance; the oldest goes first beyond it. */
const KEPT = 256;
const templates = new Map<number, Template>();
const identities = new Map<number, SigningIdentity>();

function kept<T>(cache: Map<number, T>, shared: Shared): T {
  let value = cache.get(shared.id);
  if (value === undefined) {
    // Read once per thread; whatever node:v8 gives back may view the shared memory, which is never written again.
    value = deserialize(shared.bytes) as T;
    cache.set(shared.id, value);
    const oldest = cache.keys().next().value;
    if (cache.size > KEPT && oldest !== undefined) cache.delete(oldest);
  }
  return value;
}

export default function sign(task: SignTask): SignResult | ReturnType<typeof move> {
  const template = kept(templates, task.template);
  const identity = kept(identities, task.identity);
  try {
    // zipStored allocates the bundle its own ArrayBuffer, so moving it hands it over without a copy.
    // The structured clone between threads turns each image's Buffer into a plain Uint8Array.
    const images = Object.fromEntries(
      Object.entries(task.content.images).map(([name, bytes]) => [
        name,
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      ]),
    );
    return move(buildSignedBundle({ ...task.content, images, template }, identity));
  } catch (error) {
    if (error instanceof InvalidError) return { invalid: error.message };
    throw error;
  }
}
