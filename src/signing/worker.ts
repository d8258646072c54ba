import { move } from 'piscina';
import { InvalidError } from '../errors.js';
import type { Template } from '../passes/templates.js';
import { buildSignedBundle } from './bundle.js';
import type { SigningIdentity } from './identity.js';
import type { SharedTemplate, SignResult, SignTask } from './signer.js';

/*
 * One thread of the Signer's piscina pool: builds a bundle and hands its bytes back (moved, not copied).
 * Templates and identities are kept under their number, the same objects for every pass, so the digests of a
 * template's files and an identity's parsed key (cached per object in bundle.ts) are computed once per thread.
 */

/** Enough for every template and identity of an instance; the oldest goes first beyond it. */
const KEPT = 256;
const templates = new Map<number, Template>();
const identities = new Map<number, SigningIdentity>();

function kept<T>(cache: Map<number, T>, id: number, make: () => T): T {
  let value = cache.get(id);
  if (value === undefined) {
    value = make();
    cache.set(id, value);
    const oldest = cache.keys().next().value;
    if (cache.size > KEPT && oldest !== undefined) cache.delete(oldest);
  }
  return value;
}

/** passkit-generator and the zip writer want Buffers: views over the same shared memory, not copies. */
function revive({ id: _id, files, ...template }: SharedTemplate): Template {
  const buffers: Record<string, Buffer> = {};
  for (const [name, data] of Object.entries(files)) {
    buffers[name] = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  return { ...template, files: buffers };
}

export default function sign(task: SignTask): SignResult | ReturnType<typeof move> {
  const template = kept(templates, task.template.id, () => revive(task.template));
  const identity = kept(identities, task.identityId, () => task.identity);
  try {
    // zipStored allocates the bundle its own ArrayBuffer, so moving it hands it over without a copy.
    return move(buildSignedBundle({ ...task.content, template }, identity));
  } catch (error) {
    if (error instanceof InvalidError) return { invalid: error.message };
    throw error;
  }
}
