import { createHash, verify, X509Certificate } from 'node:crypto';
import { children, type DerNode, decodeOid, decodeTime, expectTag, readElement, TAG } from './der.js';

/*
 * A .pkpass `signature` is a detached CMS SignedData (RFC 5652) over manifest.json. node-forge can parse
 * PKCS#7 but not verify it (its `verify()` throws "not yet implemented") and it only reads RSA certificates,
 * so the structure is walked with our DER reader and verified with node:crypto, which handles RSA and ECDSA.
 */

const OID = {
  signedData: '1.2.840.113549.1.7.2',
  data: '1.2.840.113549.1.7.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  subjectKeyIdentifier: '2.5.29.14',
} as const;

/** Digest algorithm OIDs (also found in the signature algorithm for sha*WithRSA / ecdsa-with-SHA*). */
const DIGESTS: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
  '2.16.840.1.101.3.4.2.4': 'sha224',
};

export interface SignerInfo {
  issuer: Buffer | undefined;
  serial: Buffer | undefined;
  subjectKeyId: Buffer | undefined;
  digest: string | undefined;
  digestOid: string;
  /** The [0] IMPLICIT signed attributes as sent (tag 0xA0), when present. */
  signedAttributesRaw: Buffer | undefined;
  attributes: Map<string, DerNode[]>;
  signature: Buffer;
}

export interface SignedData {
  /** True when the content is not embedded (a .pkpass signature must be detached). */
  detached: boolean;
  certificates: X509Certificate[];
  signers: SignerInfo[];
}

export class CmsError extends Error {
  override name = 'CmsError';
}

/** Parses a DER (or BER) ContentInfo holding SignedData. Throws CmsError naming what is wrong. */
export function parseSignedData(der: Buffer): SignedData {
  try {
    const contentInfo = children(expectTag(readElement(der), TAG.sequence, 'ContentInfo'));
    if (contentInfo[0] === undefined || decodeOid(contentInfo[0]) !== OID.signedData) {
      throw new CmsError('the content type is not SignedData');
    }
    const wrapper = expectTag(contentInfo[1], 0xa0, 'ContentInfo content');
    const signedData = children(expectTag(children(wrapper)[0], TAG.sequence, 'SignedData'));
    const encapsulated = children(expectTag(signedData[2], TAG.sequence, 'EncapsulatedContentInfo'));
    const rest = signedData.slice(3);
    const certificateSet = rest.find((node) => node.tag === 0xa0);
    const signerInfos = expectTag(rest[rest.length - 1], TAG.set, 'SignerInfos');
    return {
      detached: encapsulated[1] === undefined,
      certificates: certificateSet === undefined ? [] : children(certificateSet).map(toCertificate),
      signers: children(signerInfos).map(parseSignerInfo),
    };
  } catch (error) {
    if (error instanceof CmsError) throw error;
    throw new CmsError(`not a CMS SignedData structure (${(error as Error).message})`);
  }
}

function toCertificate(node: DerNode): X509Certificate {
  return new X509Certificate(node.raw);
}

function parseSignerInfo(node: DerNode): SignerInfo {
  const parts = children(expectTag(node, TAG.sequence, 'SignerInfo'));
  const sid = parts[1];
  const digestOid = decodeOid(children(expectTag(parts[2], TAG.sequence, 'digestAlgorithm'))[0] as DerNode);
  let at = 3;
  let signedAttributesRaw: Buffer | undefined;
  const attributes = new Map<string, DerNode[]>();
  if (parts[at]?.tag === 0xa0) {
    const signed = parts[at] as DerNode;
    signedAttributesRaw = signed.raw;
    for (const attribute of children(signed)) {
      const [type, values] = children(attribute);
      if (type !== undefined && values !== undefined) attributes.set(decodeOid(type), children(values));
    }
    at++;
  }
  const signature = expectTag(parts[at + 1], TAG.octetString, 'signature').content;
  const bySerial = sid?.tag === TAG.sequence ? children(sid) : undefined;
  return {
    issuer: bySerial?.[0]?.raw,
    serial: bySerial?.[1]?.content,
    subjectKeyId: sid?.tag === 0x80 ? sid.content : undefined,
    digest: DIGESTS[digestOid],
    digestOid,
    signedAttributesRaw,
    attributes,
    signature,
  };
}

/** The certificate a SignerInfo names (issuer + serial number, or subject key identifier). */
export function findSignerCertificate(
  signer: SignerInfo,
  certificates: readonly X509Certificate[],
): X509Certificate | undefined {
  return certificates.find((certificate) => {
    const ids = certificateIds(certificate);
    if (signer.subjectKeyId !== undefined) return ids.subjectKeyId?.equals(signer.subjectKeyId) === true;
    return (
      signer.issuer !== undefined &&
      signer.serial !== undefined &&
      ids.issuer.equals(signer.issuer) &&
      ids.serial.equals(signer.serial)
    );
  });
}

export function signingTime(signer: SignerInfo): Date | undefined {
  const value = signer.attributes.get(OID.signingTime)?.[0];
  return value === undefined ? undefined : decodeTime(value);
}

export type Verification = { ok: true } | { ok: false; reason: string };

/**
 * RFC 5652 §5.4: with signed attributes, their messageDigest must be the content's digest and the signature
 * covers the DER of the attributes as a SET (tag 0x31); without, the signature covers the content itself.
 */
export function verifySigner(
  signer: SignerInfo,
  certificate: X509Certificate,
  content: Buffer,
): Verification {
  if (signer.digest === undefined) return { ok: false, reason: `unsupported digest ${signer.digestOid}` };
  let signedBytes = content;
  if (signer.signedAttributesRaw !== undefined) {
    const digest = signer.attributes.get(OID.messageDigest)?.[0]?.content;
    if (digest === undefined) return { ok: false, reason: 'the signed attributes carry no messageDigest' };
    if (!createHash(signer.digest).update(content).digest().equals(digest)) {
      return {
        ok: false,
        reason: 'the messageDigest does not match manifest.json (it was changed after signing)',
      };
    }
    signedBytes = Buffer.concat([Buffer.from([TAG.set]), signer.signedAttributesRaw.subarray(1)]);
  }
  try {
    return verify(signer.digest, signedBytes, certificate.publicKey, signer.signature)
      ? { ok: true }
      : { ok: false, reason: 'the signature value does not verify with the signer certificate' };
  } catch (error) {
    return { ok: false, reason: `the signature cannot be checked: ${(error as Error).message}` };
  }
}

interface CertificateIds {
  issuer: Buffer;
  serial: Buffer;
  subjectKeyId: Buffer | undefined;
}

/** tbsCertificate: [0] version, serialNumber, signature, issuer, validity, subject, spki, …, [3] extensions. */
function tbsParts(certificate: X509Certificate): DerNode[] {
  const tbs = children(readElement(certificate.raw))[0] as DerNode;
  const parts = children(tbs);
  return parts[0]?.tag === 0xa0 ? parts.slice(1) : parts;
}

function certificateIds(certificate: X509Certificate): CertificateIds {
  const parts = tbsParts(certificate);
  const keyId = certificateExtensions(certificate).get(OID.subjectKeyIdentifier);
  return {
    serial: (parts[0] as DerNode).content,
    issuer: (parts[2] as DerNode).raw,
    subjectKeyId: keyId === undefined ? undefined : readElement(keyId).content,
  };
}

/** Extension OID → extnValue (the DER inside the OCTET STRING). node:crypto does not list extensions. */
export function certificateExtensions(certificate: X509Certificate): Map<string, Buffer> {
  const extensions = new Map<string, Buffer>();
  const wrapper = tbsParts(certificate).find((node) => node.tag === 0xa3);
  if (wrapper === undefined) return extensions;
  for (const extension of children(children(wrapper)[0] as DerNode)) {
    const parts = children(extension);
    const value = parts[parts.length - 1];
    if (parts[0] !== undefined && value !== undefined) extensions.set(decodeOid(parts[0]), value.content);
  }
  return extensions;
}
