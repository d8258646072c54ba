import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

/*
 * A development signing identity: a throw-away CA standing in for Apple's WWDR intermediate, and a
 * Pass Type ID certificate issued by it. Passes signed with it are well formed and verify against the
 * fake CA, but iOS only trusts signatures that chain to Apple's root, so they never install on a real device.
 */

export const DEV_PASS_TYPE_IDENTIFIER = 'pass.dev.passkit-server';
export const DEV_TEAM_IDENTIFIER = 'DEVTEAM000';

/** The subject attribute Apple puts the pass type identifier in (userId, shown as UID). */
const UID_OID = '0.9.2342.19200300.100.1.1';
/** Apple's "Pass Type ID" certificate extension; its value is the pass type identifier. */
const PASS_TYPE_ID_EXTENSION_OID = '1.2.840.113635.100.6.1.16';
const VALIDITY_YEARS = 10;

export interface DevelopmentIds {
  passTypeIdentifier: string;
  teamIdentifier: string;
}

export interface DevelopmentPems {
  signerCert: string;
  signerKey: string;
  wwdr: string;
}

interface ForgeKeyPair {
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
  privateKeyPem: string;
}

/** RSA keys come from node's native crypto (fast); forge only builds and signs the certificates. */
function rsaKeyPair(): ForgeKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    publicKey: forge.pki.publicKeyFromPem(publicKey),
    privateKeyPem: privateKey,
  };
}

function attribute(type: string, value: string): forge.pki.CertificateField {
  // forge reads valueTagClass as the ASN.1 string type (its typings call it a Class); UTF8 allows any id.
  return { type, value, valueTagClass: forge.asn1.Type.UTF8 as number as forge.asn1.Class };
}

function newCertificate(publicKey: forge.pki.rsa.PublicKey, now: Date): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: the leading 0x01 keeps the DER INTEGER's sign bit clear.
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = new Date(now.getTime() - 24 * 3600 * 1000);
  cert.validity.notAfter = new Date(now);
  cert.validity.notAfter.setFullYear(now.getFullYear() + VALIDITY_YEARS);
  return cert;
}

function utf8ExtensionValue(text: string): string {
  const { Class, Type } = forge.asn1;
  return forge.asn1.toDer(forge.asn1.create(Class.UNIVERSAL, Type.UTF8, false, text)).getBytes();
}

export function generateDevelopmentIdentity(ids: DevelopmentIds, now: Date): DevelopmentPems {
  const caKeys = rsaKeyPair();
  const ca = newCertificate(caKeys.publicKey, now);
  const caSubject = [
    attribute('2.5.4.3', 'passkit-server Development WWDR CA (not Apple)'),
    attribute('2.5.4.10', 'passkit-server development'),
  ];
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const signerKeys = rsaKeyPair();
  const signer = newCertificate(signerKeys.publicKey, now);
  // Apple's layout of a Pass Type ID certificate subject: UID = pass type id, OU = team id.
  signer.setSubject([
    attribute(UID_OID, ids.passTypeIdentifier),
    attribute('2.5.4.3', `Pass Type ID: ${ids.passTypeIdentifier}`),
    attribute('2.5.4.11', ids.teamIdentifier),
    attribute('2.5.4.10', 'passkit-server development'),
    attribute('2.5.4.6', 'US'),
  ]);
  signer.setIssuer(caSubject);
  signer.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, critical: true },
    // Apple's Pass Type ID certificates also authenticate to APNs as TLS clients.
    { name: 'extKeyUsage', clientAuth: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
    { id: PASS_TYPE_ID_EXTENSION_OID, value: utf8ExtensionValue(ids.passTypeIdentifier) },
  ]);
  signer.sign(caKeys.privateKey, forge.md.sha256.create());

  // The CA's private key is deliberately dropped: nothing else is ever issued under it.
  return {
    signerCert: forge.pki.certificateToPem(signer),
    signerKey: signerKeys.privateKeyPem,
    wwdr: forge.pki.certificateToPem(ca),
  };
}
