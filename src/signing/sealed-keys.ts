import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/*
 * Private keys uploaded through the admin API are stored sealed: AES-256-GCM under IDENTITY_ENCRYPTION_KEY, which
 * the operator keeps outside the database. The additional data names the identity and what the key is for, so a
 * sealed key copied into another row (or from the signing key to the APNs key) does not open there.
 * Layout: version byte 1, 12-byte IV, 16-byte tag, ciphertext.
 */

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** What a sealed key is for: part of its additional data. */
export type KeyPurpose = 'signer-key' | 'apns-key';

export function sealKey(
  plaintext: string,
  secret: Buffer,
  passTypeIdentifier: string,
  purpose: KeyPurpose,
): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', secret, iv);
  cipher.setAAD(additionalData(passTypeIdentifier, purpose));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.of(VERSION), iv, cipher.getAuthTag(), ciphertext]);
}

/** The key sealed by sealKey; undefined when this secret (or this identity and purpose) did not seal it. */
export function openKey(
  sealed: Uint8Array,
  secret: Buffer,
  passTypeIdentifier: string,
  purpose: KeyPurpose,
): string | undefined {
  const bytes = Buffer.from(sealed);
  if (bytes.length < 1 + IV_BYTES + TAG_BYTES || bytes[0] !== VERSION) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', secret, bytes.subarray(1, 1 + IV_BYTES));
  decipher.setAAD(additionalData(passTypeIdentifier, purpose));
  decipher.setAuthTag(bytes.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
  try {
    return Buffer.concat([
      decipher.update(bytes.subarray(1 + IV_BYTES + TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
  } catch {
    return undefined;
  }
}

function additionalData(passTypeIdentifier: string, purpose: KeyPurpose): Buffer {
  return Buffer.from(`passkit-server identity ${passTypeIdentifier} ${purpose}`);
}
