import { createHmac } from 'node:crypto';
import { ForbiddenError, GoneError } from '../errors.js';
import type { PassKey } from '../passes/passes.js';
import { secretsEqual } from '../passes/tokens.js';

/*
 * downloadUrl: an absolute, expiring link under PUBLIC_URL that serves a pass's .pkpass without the admin token,
 * for emails and web pages. It is signed with an HMAC keyed on the admin token, so every server instance that
 * shares the admin token accepts it, and rotating the admin token revokes every link.
 */
export interface DownloadLinks {
  create(key: PassKey, now: Date): string;
  verify(key: PassKey, expires: string, signature: string, now: Date): void;
}

export const downloadPath = '/download/:passTypeIdentifier/:serialNumber';

export function downloadLinks(options: {
  publicUrl: string;
  adminToken: string;
  ttlSeconds: number;
}): DownloadLinks {
  const key = createHmac('sha256', 'passkit-server download links').update(options.adminToken).digest();
  const sign = (pass: PassKey, expires: string) =>
    createHmac('sha256', key)
      .update(`${pass.passTypeIdentifier}\n${pass.serialNumber}\n${expires}`)
      .digest('base64url');
  return {
    create(pass, now) {
      const expires = String(Math.floor(now.getTime() / 1000) + options.ttlSeconds);
      const path = `/download/${encodeURIComponent(pass.passTypeIdentifier)}/${encodeURIComponent(pass.serialNumber)}`;
      return `${options.publicUrl}${path}?expires=${expires}&signature=${sign(pass, expires)}`;
    },
    verify(pass, expires, signature, now) {
      // The signature is checked first: an attacker learns nothing about expiry from a forged link.
      if (!secretsEqual(signature, sign(pass, expires)))
        throw new ForbiddenError('This download link is not valid');
      if (Number(expires) * 1000 < now.getTime()) throw new GoneError('This download link has expired');
    },
  };
}
