import { createPrivateKey, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { access, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { InvalidError, StartupError } from '../errors.js';
import type { Logger } from '../logger.js';
import {
  DEV_PASS_TYPE_IDENTIFIER,
  DEV_TEAM_IDENTIFIER,
  generateDevelopmentIdentity,
} from './dev-identity.js';

/** The identity every pass is signed with: Apple's Pass Type ID certificate, its key and the WWDR intermediate. */
export interface SigningIdentity {
  /** PEM of the Pass Type ID certificate. */
  signerCert: string;
  /** PEM private key (may be encrypted; then signerKeyPassphrase decrypts it). */
  signerKey: string;
  signerKeyPassphrase?: string;
  /** PEM of Apple's WWDR intermediate (or the development CA). */
  wwdr: string;
  /** From the certificate subject's UID. */
  passTypeIdentifier: string;
  /** From the certificate subject's OU. */
  teamIdentifier: string;
  /** True for the generated development identity, whose passes do not install on real devices. */
  isDevelopment: boolean;
  notAfter: Date;
}

/** The three PEM texts of an identity, as files hold them or as SIGNER_CERT_PEM, SIGNER_KEY_PEM, WWDR_CERT_PEM. */
export interface SigningPems {
  signerCert: string;
  signerKey: string;
  wwdr: string;
}

export interface SigningIdentityOptions {
  /** Holds signerCert.pem, signerKey.pem and wwdr.pem, or signer.p12 and wwdr.pem. */
  certificatesDir: string;
  /** PEM contents from variables (secret stores); when given, certificatesDir is not read. */
  pems?: SigningPems | undefined;
  /** Where a development identity is generated and kept. */
  dataDir: string;
  signerKeyPassphrase?: string;
  /** Configured PASS_TYPE_IDENTIFIER; must agree with the certificate's UID if given. */
  passTypeIdentifier?: string;
  /** Configured TEAM_IDENTIFIER; must agree with the certificate's OU if given. */
  teamIdentifier?: string;
  /** NODE_ENV=production: refuse a development identity, and a WWDR certificate that is not Apple's. */
  production: boolean;
  /** ALLOW_INSECURE_PRODUCTION (staging): in production, a WWDR that is not Apple's is a warning, not a refusal. */
  allowInsecureProduction?: boolean;
  log: Logger;
}

export const FILE_NAMES = ['signerCert.pem', 'signerKey.pem', 'wwdr.pem'] as const;
/** What error messages call each PEM and the key's passphrase: the file or variable, or the API's member. */
export type PemLabels = SigningPems & { passphrase: string };
const FILE_LABELS: PemLabels = {
  signerCert: 'signerCert.pem',
  signerKey: 'signerKey.pem',
  wwdr: 'wwdr.pem',
  passphrase: 'SIGNER_KEY_PASSPHRASE',
};
const VARIABLE_LABELS: PemLabels = {
  signerCert: 'SIGNER_CERT_PEM',
  signerKey: 'SIGNER_KEY_PEM',
  wwdr: 'WWDR_CERT_PEM',
  passphrase: 'SIGNER_KEY_PASSPHRASE',
};
/** Apple's certificates last a year; a month's notice (the start log, doctor) leaves time to renew before passes stop updating. */
export const RENEWAL_WARNING_MS = 30 * 24 * 3600 * 1000;
const HELP = 'See certificates.example/README.md for how to obtain and convert them.';

export async function loadSigningIdentity(o: SigningIdentityOptions): Promise<SigningIdentity> {
  try {
    return await loadConfiguredIdentity(o);
  } catch (error) {
    // The checks say what is wrong with the input (the API answers them as 400s); at start they stop the server.
    if (error instanceof InvalidError) throw new StartupError(error.message);
    throw error;
  }
}

async function loadConfiguredIdentity(o: SigningIdentityOptions): Promise<SigningIdentity> {
  if (o.pems) {
    const identity = checkIdentity(o.pems, VARIABLE_LABELS, o.signerKeyPassphrase, false);
    return accepted(identity, VARIABLE_LABELS, 'SIGNER_CERT_PEM, SIGNER_KEY_PEM, WWDR_CERT_PEM', o);
  }
  const folder = await inspectCertificateFolder(o.certificatesDir);
  if (folder.kind === 'complete') {
    const { pems, labels } = await readCertificateFiles(o.certificatesDir, o.signerKeyPassphrase);
    const identity = checkIdentity(pems, labels, o.signerKeyPassphrase, false);
    return accepted(identity, labels, o.certificatesDir, o);
  }
  if (folder.kind === 'incomplete') {
    throw new StartupError(`CERTIFICATES_DIR (${o.certificatesDir}) ${folder.problem}. ${HELP}`);
  }
  if (o.production) {
    throw new StartupError(
      `No signing certificates in CERTIFICATES_DIR (${o.certificatesDir}): expected signerCert.pem, ` +
        'signerKey.pem and wwdr.pem (or signer.p12 and wwdr.pem). NODE_ENV=production refuses the generated development identity, ' +
        `because passes signed with it do not install on real devices. ${HELP}`,
    );
  }
  return loadDevelopmentIdentity(o);
}

/**
 * One more identity per subfolder of CERTIFICATES_DIR (e.g. certificates/brand-b/signerCert.pem, …, or signer.p12),
 * read and checked like the folder's own files, with SIGNER_KEY_PASSPHRASE. A subfolder with none of the files is
 * left alone; one with part of them, or a second identity of a pass type identifier, stops the start.
 */
export async function loadIdentityFolders(o: SigningIdentityOptions): Promise<SigningIdentity[]> {
  if (o.pems) return [];
  const entries = await readdir(o.certificatesDir, { withFileTypes: true }).catch(() => []);
  const identities: SigningIdentity[] = [];
  for (const entry of entries.filter((each) => each.isDirectory() && !each.name.startsWith('.'))) {
    const dir = join(o.certificatesDir, entry.name);
    const folder = await inspectCertificateFolder(dir);
    if (folder.kind === 'empty') continue;
    if (folder.kind === 'incomplete') throw new StartupError(`${dir} ${folder.problem}. ${HELP}`);
    try {
      const { pems, labels } = await readCertificateFiles(dir, o.signerKeyPassphrase);
      const named = prefixed(labels, `${entry.name}/`);
      const identity = checkIdentity(pems, named, o.signerKeyPassphrase, false);
      if (o.production) assertAppleWwdr(identity, named, o);
      o.log.info(
        {
          source: dir,
          passTypeIdentifier: identity.passTypeIdentifier,
          notAfter: identity.notAfter.toISOString(),
        },
        'Signing identity loaded',
      );
      logExpiry(identity, named.signerCert, o.log);
      identities.push(identity);
    } catch (error) {
      if (error instanceof InvalidError) throw new StartupError(error.message);
      throw error;
    }
  }
  return identities;
}

function prefixed(labels: PemLabels, prefix: string): PemLabels {
  return {
    signerCert: prefix + labels.signerCert,
    signerKey: prefix + labels.signerKey,
    wwdr: prefix + labels.wwdr,
    passphrase: labels.passphrase,
  };
}

/** A real identity passes the configured-id check and, in production, the Apple WWDR check; its source and expiry are logged. */
function accepted(
  identity: SigningIdentity,
  labels: PemLabels,
  source: string,
  o: SigningIdentityOptions,
): SigningIdentity {
  assertConfiguredIdsAgree(identity, o);
  if (o.production) assertAppleWwdr(identity, labels, o);
  o.log.info(
    {
      source,
      passTypeIdentifier: identity.passTypeIdentifier,
      teamIdentifier: identity.teamIdentifier,
      notAfter: identity.notAfter.toISOString(),
    },
    'Signing identity loaded',
  );
  logExpiry(identity, labels.signerCert, o.log);
  return identity;
}

/**
 * An expired identity does not stop the server: its passes are still served from the bundles signed before, and
 * only what needs a new signature is refused (src/passes/passes.ts). Said at every load, and warned of a month ahead.
 */
export function logExpiry(identity: SigningIdentity, label: string, log: Logger, now = new Date()): void {
  const notAfter = identity.notAfter.toISOString();
  const { passTypeIdentifier } = identity;
  if (isExpired(identity, now)) {
    log.error(
      { passTypeIdentifier, notAfter },
      `${label} has expired: Wallet rejects passes signed with it, so passes are served from their ` +
        `last signed bundles and creating or changing one is refused. Create a new certificate for the Pass Type ID. ${HELP}`,
    );
  } else if (identity.notAfter.getTime() - now.getTime() < RENEWAL_WARNING_MS) {
    log.warn({ passTypeIdentifier, notAfter }, `${label} expires soon: renew it at Apple`);
  }
}

const APPLE_WWDR_NAME = 'Apple Worldwide Developer Relations Certification Authority';
const APPLE_ROOT_NAME = 'Apple Root CA';

/**
 * True when the certificate names Apple's WWDR intermediate, issued by Apple's root (checked by name: it tells
 * Apple's intermediate from the development CA or a test CA; whether the chain is trusted is Wallet's check).
 */
export function isAppleWwdr(cert: X509Certificate): boolean {
  return (
    subjectAttribute(cert.subject, 'CN') === APPLE_WWDR_NAME &&
    subjectAttribute(cert.subject, 'O') === 'Apple Inc.' &&
    subjectAttribute(cert.issuer, 'CN') === APPLE_ROOT_NAME
  );
}

/**
 * Wallet installs only passes whose signature chains through Apple's WWDR intermediate to Apple's root; one signed
 * under another CA (the development identity copied into CERTIFICATES_DIR, a test CA) would start and serve passes
 * that no device takes. Production refuses it, unless ALLOW_INSECURE_PRODUCTION says this is a staging server.
 */
export function assertAppleWwdr(
  identity: SigningIdentity,
  labels: Pick<PemLabels, 'wwdr'>,
  o: Pick<SigningIdentityOptions, 'allowInsecureProduction' | 'log'>,
): void {
  const wwdr = new X509Certificate(identity.wwdr);
  if (isAppleWwdr(wwdr)) return;
  const what =
    `${labels.wwdr} is not Apple's WWDR intermediate (subject: ${oneLine(wwdr.subject)}; issuer: ` +
    `${oneLine(wwdr.issuer)}; Apple's is "${APPLE_WWDR_NAME}" of Apple Inc., issued by "${APPLE_ROOT_NAME}")`;
  if (o.allowInsecureProduction) {
    o.log.warn(
      `ALLOW_INSECURE_PRODUCTION=true: ${what}. Passes signed with it will NOT install on real devices.`,
    );
    return;
  }
  throw new InvalidError(
    `${what}: passes signed under it do not install on real devices, so NODE_ENV=production refuses it. ` +
      `Use your Pass Type ID certificate with Apple's WWDR G4 intermediate, or set ALLOW_INSECURE_PRODUCTION=true ` +
      `for a staging server. ${HELP}`,
  );
}

/**
 * Keychain's export of the Pass Type ID certificate with its private key (what most people have): it takes the
 * place of signerCert.pem and signerKey.pem, and SIGNER_KEY_PASSPHRASE is the password it was exported with.
 */
export const P12_FILE = 'signer.p12';
const P12_LABELS: PemLabels = {
  signerCert: `${P12_FILE} (its certificate)`,
  signerKey: `${P12_FILE} (its private key)`,
  wwdr: 'wwdr.pem',
  passphrase: 'SIGNER_KEY_PASSPHRASE',
};

/** What CERTIFICATES_DIR holds: no identity, a whole one, or part of one (the server and `doctor` read alike). */
export type CertificateFolder =
  | { kind: 'empty' }
  | { kind: 'complete' }
  | { kind: 'incomplete'; problem: string };

export async function inspectCertificateFolder(dir: string): Promise<CertificateFolder> {
  const names = [...FILE_NAMES, P12_FILE];
  const found = await Promise.all(
    names.map((name) =>
      access(join(dir, name)).then(
        () => name,
        () => undefined,
      ),
    ),
  );
  const present = new Set(found.filter((name) => name !== undefined));
  if (present.size === 0) return { kind: 'empty' };
  const pemPair = present.has('signerCert.pem') || present.has('signerKey.pem');
  if (present.has(P12_FILE) && pemPair) {
    return {
      kind: 'incomplete',
      problem: `holds both ${P12_FILE} and signerCert.pem/signerKey.pem: keep one of them`,
    };
  }
  const wanted = present.has(P12_FILE) ? [P12_FILE, 'wwdr.pem'] : [...FILE_NAMES];
  const missing = wanted.filter((name) => !present.has(name));
  if (missing.length === 0) return { kind: 'complete' };
  return {
    kind: 'incomplete',
    problem:
      `is incomplete: missing ${missing.join(', ')}. A signing identity needs signerCert.pem, signerKey.pem and ` +
      `wwdr.pem, or ${P12_FILE} (Keychain's export) and wwdr.pem`,
  };
}

/** The identity's PEM texts from a complete folder (signer.p12 converted), with what messages call each. */
export async function readCertificateFiles(
  dir: string,
  passphrase: string | undefined,
): Promise<{ pems: SigningPems; labels: PemLabels }> {
  const p12 = await readFile(join(dir, P12_FILE)).catch(() => undefined);
  if (p12 !== undefined) {
    const wwdr = await readFile(join(dir, FILE_LABELS.wwdr), 'utf8');
    return { pems: { ...pemsFromP12(p12, passphrase, P12_FILE, P12_LABELS), wwdr }, labels: P12_LABELS };
  }
  const [signerCert, signerKey, wwdr] = await Promise.all([
    readFile(join(dir, FILE_LABELS.signerCert), 'utf8'),
    readFile(join(dir, FILE_LABELS.signerKey), 'utf8'),
    readFile(join(dir, FILE_LABELS.wwdr), 'utf8'),
  ]);
  return { pems: { signerCert, signerKey, wwdr }, labels: FILE_LABELS };
}

/**
 * The certificate and private key of a PKCS#12 file, as PEM; the key stays encrypted with the file's passphrase,
 * so it is read like a signerKey.pem with SIGNER_KEY_PASSPHRASE. node-forge reads what Keychain and OpenSSL write
 * (3DES and RC2 of older exports, PBES2 with AES of newer ones); Node has no PKCS#12 reader of its own.
 */
export function pemsFromP12(
  p12: Buffer,
  passphrase: string | undefined,
  label: string,
  labels: Pick<PemLabels, 'passphrase'>,
): Omit<SigningPems, 'wwdr'> {
  let parsed: forge.pkcs12.Pkcs12Pfx;
  try {
    parsed = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(p12.toString('binary')), true, passphrase ?? '');
  } catch (error) {
    const why = /mac|password|Invalid/i.test((error as Error).message)
      ? passphrase === undefined
        ? `it is protected by a password: set ${labels.passphrase} to it`
        : `wrong ${labels.passphrase}`
      : 'not a PKCS#12 file';
    throw new InvalidError(`${label} cannot be read: ${why}. ${HELP}`);
  }
  const key = bagsOf(parsed, forge.pki.oids.pkcs8ShroudedKeyBag ?? '')
    .concat(bagsOf(parsed, forge.pki.oids.keyBag ?? ''))
    .map((bag) => bag.key)
    .find((found) => found !== undefined);
  if (key === undefined) {
    throw new InvalidError(
      `${label} holds no RSA private key: export the certificate with its key from Keychain. ${HELP}`,
    );
  }
  const rsaKey = key as forge.pki.rsa.PrivateKey;
  // Keychain may add the chain: the signer is the certificate of this key.
  const certificate = bagsOf(parsed, forge.pki.oids.certBag ?? '')
    .map((bag) => bag.cert)
    .find((cert) => cert !== undefined && (cert.publicKey as forge.pki.rsa.PublicKey).n?.equals(rsaKey.n));
  if (certificate === undefined) {
    throw new InvalidError(`${label} holds no certificate for its private key. ${HELP}`);
  }
  const signerKey =
    passphrase === undefined
      ? forge.pki.privateKeyToPem(rsaKey)
      : forge.pki.encryptRsaPrivateKey(rsaKey, passphrase, { algorithm: 'aes256' });
  return { signerCert: forge.pki.certificateToPem(certificate), signerKey };
}

function bagsOf(p12: forge.pkcs12.Pkcs12Pfx, bagType: string): forge.pkcs12.Bag[] {
  return p12.getBags({ bagType })[bagType] ?? [];
}

/** Reads and checks the identity files of a folder. Throws InvalidError naming the file at fault. */
async function readIdentity(
  dir: string,
  passphrase: string | undefined,
  isDevelopment: boolean,
): Promise<SigningIdentity> {
  const { pems, labels } = await readCertificateFiles(dir, passphrase);
  return checkIdentity(pems, labels, passphrase, isDevelopment);
}

/** Checks the three PEMs as Wallet will. Throws InvalidError naming the file, variable or member at fault. */
export function checkIdentity(
  { signerCert, signerKey, wwdr }: SigningPems,
  labels: PemLabels,
  passphrase: string | undefined,
  isDevelopment: boolean,
): SigningIdentity {
  const cert = parseCertificate(signerCert, labels.signerCert);
  const wwdrCert = parseCertificate(wwdr, labels.wwdr);
  const key = parsePrivateKey(signerKey, passphrase, labels);

  if (!cert.checkPrivateKey(key)) {
    throw new InvalidError(`${labels.signerKey} is not the private key of ${labels.signerCert}.`);
  }
  // Wallet checks the chain signer → WWDR → Apple root: a wrong WWDR generation (e.g. G1 instead of G4) fails.
  if (!cert.checkIssued(wwdrCert) || !cert.verify(wwdrCert.publicKey)) {
    throw new InvalidError(
      `${labels.signerCert} was not issued by ${labels.wwdr} (certificate issuer: ${oneLine(cert.issuer)}; ` +
        `${labels.wwdr} subject: ${oneLine(wwdrCert.subject)}). Download the WWDR intermediate that issued it. ${HELP}`,
    );
  }
  const notAfter = new Date(cert.validTo);
  const { passTypeIdentifier, teamIdentifier } = passIdsOf(cert, labels.signerCert);
  return {
    signerCert,
    signerKey,
    ...(passphrase === undefined ? {} : { signerKeyPassphrase: passphrase }),
    wwdr,
    passTypeIdentifier,
    teamIdentifier,
    isDevelopment,
    notAfter,
  };
}

function parseCertificate(pem: string, label: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new InvalidError(`${label} is not a PEM certificate (-----BEGIN CERTIFICATE-----). ${HELP}`);
  }
}

function parsePrivateKey(pem: string, passphrase: string | undefined, labels: PemLabels): KeyObject {
  const label = labels.signerKey;
  let key: KeyObject;
  try {
    key = createPrivateKey(passphrase === undefined ? pem : { key: pem, passphrase });
  } catch {
    const hint =
      passphrase === undefined && pem.includes('ENCRYPTED')
        ? `it is encrypted: set ${labels.passphrase}`
        : `wrong ${labels.passphrase}, or not a PEM private key`;
    throw new InvalidError(`${label} cannot be read: ${hint}.`);
  }
  // passkit-generator signs with node-forge, which reads RSA keys only (Apple issues RSA certificates).
  if (key.asymmetricKeyType !== 'rsa' || !forgeCanRead(pem, passphrase)) {
    throw new InvalidError(
      `${label} must be an RSA key in PEM (PKCS#1 or PKCS#8) that node-forge can read; ` +
        `re-export it with: openssl pkey -in signerKey.pem -out signerKey.pem -aes256. ${HELP}`,
    );
  }
  return key;
}

function forgeCanRead(pem: string, passphrase: string | undefined): boolean {
  try {
    return forge.pki.decryptRsaPrivateKey(pem, passphrase ?? '') !== null;
  } catch {
    return false;
  }
}

/** One attribute of a distinguished name as Node prints it, one per line ("UID=pass.x\nCN=…\nOU=TEAM"). */
export function subjectAttribute(distinguishedName: string, name: string): string | undefined {
  for (const line of distinguishedName.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0 && line.slice(0, at) === name) return line.slice(at + 1);
  }
  return undefined;
}

/** Apple's Pass Type ID certificates carry the pass type id in the subject's UID and the team id in its OU. */
function passIdsOf(
  cert: X509Certificate,
  label: string,
): { passTypeIdentifier: string; teamIdentifier: string } {
  const passTypeIdentifier = subjectAttribute(cert.subject, 'UID');
  const teamIdentifier = subjectAttribute(cert.subject, 'OU');
  if (!passTypeIdentifier || !teamIdentifier) {
    const missing = [
      passTypeIdentifier ? '' : 'UID (pass type identifier)',
      teamIdentifier ? '' : 'OU (team identifier)',
    ];
    throw new InvalidError(
      `${label} has no ${missing.filter(Boolean).join(' and ')} in its subject (${oneLine(cert.subject)}): ` +
        `it is not a Pass Type ID certificate. ${HELP}`,
    );
  }
  return { passTypeIdentifier, teamIdentifier };
}

function assertConfiguredIdsAgree(identity: SigningIdentity, o: SigningIdentityOptions): void {
  // Apple: pass.json's passTypeIdentifier and teamIdentifier must match the signing certificate.
  const pairs = [
    ['PASS_TYPE_IDENTIFIER', o.passTypeIdentifier, identity.passTypeIdentifier, 'UID'],
    ['TEAM_IDENTIFIER', o.teamIdentifier, identity.teamIdentifier, 'OU'],
  ] as const;
  for (const [variable, configured, fromCertificate, field] of pairs) {
    if (configured !== undefined && configured !== fromCertificate) {
      throw new StartupError(
        `${variable} is "${configured}" but the signing certificate is for "${fromCertificate}" (its subject ${field}). ` +
          `Wallet would reject every pass. Unset ${variable} or set it to "${fromCertificate}", or use the matching certificate.`,
      );
    }
  }
}

async function loadDevelopmentIdentity(o: SigningIdentityOptions): Promise<SigningIdentity> {
  const dir = join(o.dataDir, 'dev-certificates');
  const wanted = {
    passTypeIdentifier: o.passTypeIdentifier ?? DEV_PASS_TYPE_IDENTIFIER,
    teamIdentifier: o.teamIdentifier ?? DEV_TEAM_IDENTIFIER,
  };
  let identity = await readIdentity(dir, undefined, true).catch(() => undefined);
  if (
    identity?.passTypeIdentifier !== wanted.passTypeIdentifier ||
    identity.teamIdentifier !== wanted.teamIdentifier ||
    isExpired(identity, new Date())
  ) {
    // Missing, unreadable, expired or made for other ids: a development identity is cheap to replace.
    await writeDevelopmentIdentity(dir, wanted);
    identity = await readIdentity(dir, undefined, true);
    o.log.info({ dir }, 'Generated a development signing identity');
  }
  o.log.warn(
    { dir, passTypeIdentifier: identity.passTypeIdentifier, teamIdentifier: identity.teamIdentifier },
    'Signing passes with a DEVELOPMENT identity: passes signed with it will NOT install on real devices ' +
      '(iOS only trusts Apple-issued certificates). Put Apple certificates in CERTIFICATES_DIR; ' +
      'see certificates.example/README.md.',
  );
  return identity;
}

/** Writes into a fresh folder and renames it into place, so a crash never leaves half an identity. */
async function writeDevelopmentIdentity(
  dir: string,
  ids: { passTypeIdentifier: string; teamIdentifier: string },
): Promise<void> {
  const pems = generateDevelopmentIdentity(ids, new Date());
  const staging = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(staging, { recursive: true, mode: 0o700 });
  await writeFile(join(staging, 'signerCert.pem'), pems.signerCert);
  await writeFile(join(staging, 'signerKey.pem'), pems.signerKey, { mode: 0o600 });
  await writeFile(join(staging, 'wwdr.pem'), pems.wwdr);
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
}

/** Apple's certificate is valid until notAfter: Wallet rejects a pass signed later with it, and APNs the push. */
export function isExpired(identity: Pick<SigningIdentity, 'notAfter'>, now: Date): boolean {
  return identity.notAfter.getTime() <= now.getTime();
}

/** Whole days until the certificate expires (negative once it has). */
export function daysLeft(identity: Pick<SigningIdentity, 'notAfter'>, now: Date): number {
  return Math.floor((identity.notAfter.getTime() - now.getTime()) / 86_400_000);
}

/** A distinguished name on one line, for messages. */
export function oneLine(distinguishedName: string): string {
  return distinguishedName.split('\n').join(', ');
}
