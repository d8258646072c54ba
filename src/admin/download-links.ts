import { createHmac } from 'node:crypto';
import { ForbiddenError, GoneError } from '../errors.js';
import type { PassKey, StoredPass } from '../passes/passes.js';
import { secretsEqual } from '../passes/tokens.js';

/*
 * downloadUrl: an absolute, expiring link under PUBLIC_URL that serves a pass's .pkpass without the admin token,
 * for emails and web pages. It is signed with an HMAC keyed on the admin token, so every server instance that
 * shares the admin token accepts it, and rotating the admin token revokes every link.
 *
 * The signature covers the pass's database id as well as its key: a pass deleted and created again under the same
 * serial number is another pass (another id, another authentication token), and the old link must not serve it.
 * The id is not in the link (it would tell how many passes were made); the server reads it from the pass that
 * the link's key names. Links signed before the id was part of the signature are refused like forged ones.
 */

/** What a link names and is signed for: the pass's key, and which pass under that key. */
export type LinkedPass = PassKey & Pick<StoredPass, 'id'>;

export interface DownloadLinks {
  create(pass: LinkedPass, now: Date): string;
  /**
   * Throws unless the link for `key` was signed for `pass` (the pass stored under that key now; undefined when
   * there is none) and has not expired.
   */
  verify(
    key: PassKey,
    pass: LinkedPass | undefined,
    link: { expires: string; signature: string },
    now: Date,
  ): asserts pass is LinkedPass;
}

export const downloadPath = '/download/:passTypeIdentifier/:serialNumber';

export function downloadLinks(options: {
  publicUrl: string;
  adminToken: string;
  ttlSeconds: number;
}): DownloadLinks {
  const key = createHmac('sha256', 'passkit-server download links').update(options.adminToken).digest();
  const sign = (pass: PassKey, id: string, expires: string) =>
    createHmac('sha256', key)
      .update(`${pass.passTypeIdentifier}\n${pass.serialNumber}\n${id}\n${expires}`)
      .digest('base64url');
  return {
    create(pass, now) {
      const expires = String(Math.floor(now.getTime() / 1000) + options.ttlSeconds);
      const path = `/download/${encodeURIComponent(pass.passTypeIdentifier)}/${encodeURIComponent(pass.serialNumber)}`;
      return `${options.publicUrl}${path}?expires=${expires}&signature=${sign(pass, String(pass.id), expires)}`;
    },
    verify(linkKey, pass, link, now) {
      // The signature is checked first: an attacker learns nothing about expiry from a forged link. It is computed
      // when no pass has the key too, so that answer takes the same time.
      const expected = sign(linkKey, pass ? String(pass.id) : '', link.expires);
      if (!pass || !secretsEqual(link.signature, expected))
        throw new ForbiddenError('This download link is not valid');
      if (Number(link.expires) * 1000 < now.getTime()) throw new GoneError('This download link has expired');
    },
  };
}
