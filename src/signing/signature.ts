import { createHash, createPrivateKey, type KeyObject, sign, X509Certificate } from 'node:crypto';

/*
 * Apple: a pass's `signature` is a detached PKCS#7 (CMS, RFC 5652) SignedData over manifest.json, made with the
 * Pass Type ID certificate, carrying the WWDR intermediate (devices only hold Apple's root) and a signing time.
 * Built here around node:crypto (OpenSSL does the RSA/ECDSA arithmetic, about 0.3 ms) instead of node-forge's
 * JavaScript RSA (about 20 ms), with a small DER writer: everything but the signed attributes and the signature
 * value is the same for every pass, so it is encoded once per identity.
 */

/** What a signature needs from the identity, parsed once: the key and the DER of both certificates. */
export interface ManifestSigner {
  key: KeyObject;
  /** [0] IMPLICIT SET OF Certificate: the signer certificate and the WWDR intermediate, encoded once. */
  certificateSet: Buffer;
  /** IssuerAndSerialNumber of the signer certificate: how the SignerInfo names its certificate. */
  issuerAndSerialNumber: Buffer;
  /** AlgorithmIdentifier of the signature: rsaEncryption or ecdsa-with-SHA256. */
  signatureAlgorithm: Buffer;
}

export interface SignerPems {
  signerCert: string;
  signerKey: string;
  signerKeyPassphrase?: string | undefined;
  wwdr: string;
}

const OID = {
  signedData: '1.2.840.113549.1.7.2',
  data: '1.2.840.113549.1.7.1',
  sha256: '2.16.840.1.101.3.4.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
} as const;

const TAG = {
  integer: 0x02,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
  /** [0] constructed: EXPLICIT content of ContentInfo, IMPLICIT certificates and signedAttrs. */
  context0: 0xa0,
} as const;

export function createManifestSigner(pems: SignerPems): ManifestSigner {
  const key = createPrivateKey(
    pems.signerKeyPassphrase === undefined
      ? pems.signerKey
      : { key: pems.signerKey, passphrase: pems.signerKeyPassphrase },
  );
  const signerDer = new X509Certificate(pems.signerCert).raw;
  const wwdrDer = new X509Certificate(pems.wwdr).raw;
  let signatureAlgorithm: Buffer;
  if (key.asymmetricKeyType === 'rsa') {
    // rsaEncryption with NULL parameters is what OpenSSL and Apple's signpass write for PKCS#1 v1.5 signatures.
    signatureAlgorithm = sequence(oid(OID.rsaEncryption), der(TAG.null, Buffer.alloc(0)));
  } else if (key.asymmetricKeyType === 'ec') {
    signatureAlgorithm = sequence(oid(OID.ecdsaWithSha256));
  } else {
    throw new Error(`signer key type ${String(key.asymmetricKeyType)} is not supported (RSA or EC only)`);
  }
  return {
    key,
    // Sorted like any DER SET OF; verifiers find the signer by issuer and serial number, not by position.
    certificateSet: der(TAG.context0, Buffer.concat([signerDer, wwdrDer].sort(Buffer.compare))),
    issuerAndSerialNumber: issuerAndSerialNumberOf(signerDer),
    signatureAlgorithm,
  };
}

/** The DER of a detached CMS SignedData over `content`, signed now (or at `signingTime`). */
export function signDetached(content: Buffer, signer: ManifestSigner, signingTime = new Date()): Buffer {
  const sha256 = sequence(oid(OID.sha256));
  // RFC 5652 §5.4: the signature covers the DER of the signed attributes as a SET, which must be sorted (DER).
  const attributes = setOf([
    attribute(OID.contentType, oid(OID.data)),
    attribute(OID.signingTime, time(signingTime)),
    attribute(OID.messageDigest, der(TAG.octetString, createHash('sha256').update(content).digest())),
  ]);
  const signature = sign('sha256', attributes, signer.key);
  const signerInfo = sequence(
    integer(1), // version 1: the signer is named by issuer and serial number
    signer.issuerAndSerialNumber,
    sha256,
    retag(attributes, TAG.context0), // [0] IMPLICIT SET OF Attribute
    signer.signatureAlgorithm,
    der(TAG.octetString, signature),
  );
  const signedData = sequence(
    integer(1),
    der(TAG.set, sha256),
    sequence(oid(OID.data)), // detached: eContentType without eContent
    signer.certificateSet,
    der(TAG.set, signerInfo),
  );
  return sequence(oid(OID.signedData), der(TAG.context0, signedData));
}

// ---------- a minimal DER writer ----------

function der(tag: number, content: Buffer): Buffer {
  const length = content.length;
  let header: Buffer;
  if (length < 0x80) {
    header = Buffer.from([tag, length]);
  } else {
    const bytes: number[] = [];
    for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
    header = Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([header, content]);
}

function sequence(...elements: Buffer[]): Buffer {
  return der(TAG.sequence, Buffer.concat(elements));
}

/** DER orders the elements of a SET OF by their encodings. */
function setOf(elements: Buffer[]): Buffer {
  return der(TAG.set, Buffer.concat([...elements].sort(Buffer.compare)));
}

function retag(element: Buffer, tag: number): Buffer {
  const copy = Buffer.from(element);
  copy[0] = tag;
  return copy;
}

function attribute(type: string, value: Buffer): Buffer {
  return sequence(oid(type), der(TAG.set, value));
}

/** Small non-negative integers only (versions). */
function integer(value: number): Buffer {
  return der(TAG.integer, Buffer.from([value]));
}

const oidCache = new Map<string, Buffer>();

function oid(dotted: string): Buffer {
  const cached = oidCache.get(dotted);
  if (cached !== undefined) return cached;
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let value = Math.floor(arc / 128); value > 0; value = Math.floor(value / 128)) {
      base128.unshift(0x80 | (value & 0x7f));
    }
    bytes.push(...base128);
  }
  const encoded = der(TAG.oid, Buffer.from(bytes));
  oidCache.set(dotted, encoded);
  return encoded;
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, always Zulu. */
function time(date: Date): Buffer {
  const iso = date.toISOString(); // 2026-11-23T18:47:41.123Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, ''); // 20261123184741
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return der(TAG.utcTime, Buffer.from(`${digits.slice(2)}Z`, 'latin1'));
  return der(TAG.generalizedTime, Buffer.from(`${digits}Z`, 'latin1'));
}

// ---------- reading the signer certificate ----------

interface Element {
  tag: number;
  /** The whole element: tag, length and content. */
  start: number;
  contentStart: number;
  end: number;
}

function readElement(buffer: Buffer, offset: number): Element {
  const tag = buffer[offset];
  const first = buffer[offset + 1];
  if (tag === undefined || first === undefined) throw new Error('signer certificate: truncated DER');
  let length = first;
  let contentStart = offset + 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buffer[contentStart + i] ?? 0);
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > buffer.length) throw new Error('signer certificate: truncated DER');
  return { tag, start: offset, contentStart, end };
}

/** Certificate → tbsCertificate → ([0] version), serialNumber, signature, issuer: the raw issuer and serial. */
function issuerAndSerialNumberOf(certificate: Buffer): Buffer {
  const tbs = readElement(certificate, readElement(certificate, 0).contentStart);
  let at = readElement(certificate, tbs.contentStart);
  if (at.tag === TAG.context0) at = readElement(certificate, at.end);
  const serial = at;
  const signatureAlgorithm = readElement(certificate, serial.end);
  const issuer = readElement(certificate, signatureAlgorithm.end);
  if (serial.tag !== TAG.integer || issuer.tag !== TAG.sequence) {
    throw new Error('signer certificate: unexpected tbsCertificate layout');
  }
  return sequence(
    certificate.subarray(issuer.start, issuer.end),
    certificate.subarray(serial.start, serial.end),
  );
}
