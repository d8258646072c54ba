import { parentPort } from 'node:worker_threads';
import { InvalidError } from '../errors.js';
import { buildSignedBundleNow } from './bundle.js';
import type { SigningIdentity } from './signing-identity.js';
import type { SignRequest, SignResponse } from './signing-pool.js';
import type { Template } from './templates.js';

/*
 * One thread of the signing pool: builds bundles with buildSignedBundleNow and posts their bytes back
 * (transferred, not copied). Templates and identities arrive once and are kept here under their number, so the
 * digests of a template's files and an identity's parsed key are computed once per worker.
 */

const templates = new Map<number, Template>();
const identities = new Map<number, SigningIdentity>();

/** Structured clone turns Buffers into plain Uint8Arrays; passkit-generator and the zip writer want Buffers. */
function revive(template: Template): Template {
  const files: Record<string, Buffer> = {};
  for (const [name, data] of Object.entries(template.files)) {
    files[name] = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  return { ...template, files };
}

function handle(request: SignRequest): { response: SignResponse; transfer: ArrayBuffer[] } {
  if (request.template !== undefined) templates.set(request.templateId, revive(request.template));
  if (request.identity !== undefined) identities.set(request.identityId, request.identity);
  const template = templates.get(request.templateId);
  const identity = identities.get(request.identityId);
  try {
    if (template === undefined || identity === undefined) {
      throw new Error('signing worker: template or identity was never posted to this worker');
    }
    const bytes = buildSignedBundleNow({ ...request.content, template }, identity);
    // zipStored allocates the bundle its own ArrayBuffer, so handing it over moves it without a copy.
    const transfer = bytes.byteLength === bytes.buffer.byteLength ? [bytes.buffer as ArrayBuffer] : [];
    return { response: { id: request.id, ok: true, bytes }, transfer };
  } catch (error) {
    const failure = error instanceof Error ? error : new Error(String(error));
    return {
      response: {
        id: request.id,
        ok: false,
        invalid: failure instanceof InvalidError,
        message: failure.message,
        stack: failure.stack,
      },
      transfer: [],
    };
  }
}

parentPort?.on('message', (request: SignRequest) => {
  const { response, transfer } = handle(request);
  parentPort?.postMessage(response, transfer);
});
