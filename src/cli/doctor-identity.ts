import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { InvalidError } from '../errors.js';
import {
  DEV_PASS_TYPE_IDENTIFIER,
  DEV_TEAM_IDENTIFIER,
  generateDevelopmentIdentity,
} from '../signing/dev-identity.js';
import {
  inspectCertificateFolder,
  isAppleWwdr,
  oneLine,
  readCertificateFiles,
  type SigningIdentity,
  type SigningPems,
  subjectAttribute,
} from '../signing/identity.js';
import { checkSignerCertificate, checkValidity, issuedBy, wwdrGeneration } from './certificate-rules.js';
import { type Finding, fail, pass, warn } from './findings.js';

/*
 * doctor's signing identity checks: the same sources as the server (SIGNER_*_PEM variables, else the files in
 * CERTIFICATES_DIR, else the development identity), but every rule is reported instead of stopping
 * at the first. Nothing is written: a missing development identity is generated in memory only.
 */

export const IDENTITY_RULES = {
  source: 'identity/source',
  development: 'identity/development',
  readable: 'identity/readable',
  keyMatches: 'identity/key-matches-certificate',
  issuedByWwdr: 'identity/issued-by-wwdr',
  wwdr: 'identity/wwdr',
} as const;
const R = IDENTITY_RULES;
const HELP = 'See certificates.example/README.md.';

export interface IdentityCheck {
  findings: Finding[];
  /** Usable for signing (and certificate auth to APNs): readable, key matching; other findings may still fail. */
  identity: SigningIdentity | undefined;
}

export async function checkIdentity(config: Config, now: Date): Promise<IdentityCheck> {
  if (config.signingPems !== undefined) {
    return checkRealIdentity(
      config.signingPems,
      'SIGNER_CERT_PEM, SIGNER_KEY_PEM, WWDR_CERT_PEM',
      config,
      now,
    );
  }
  const folder = await inspectCertificateFolder(config.certificatesDir);
  if (folder.kind === 'complete') {
    try {
      const { pems } = await readCertificateFiles(config.certificatesDir, config.signerKeyPassphrase);
      return checkRealIdentity(pems, config.certificatesDir, config, now);
    } catch (error) {
      if (!(error instanceof InvalidError)) throw error;
      const finding = fail(
        R.source,
        error.message,
        HELP,
        'The server refuses to start with an unreadable identity.',
      );
      return { findings: [finding], identity: undefined };
    }
  }
  if (folder.kind === 'incomplete') {
    const finding = fail(
      R.source,
      `CERTIFICATES_DIR (${config.certificatesDir}) ${folder.problem}`,
      `Put signerCert.pem, signerKey.pem and wwdr.pem there, or signer.p12 and wwdr.pem. ${HELP}`,
      'The server refuses to start with an incomplete identity.',
    );
    return { findings: [finding], identity: undefined };
  }
  return developmentIdentity(config, now);
}

async function developmentIdentity(config: Config, now: Date): Promise<IdentityCheck> {
  const why =
    'iOS only installs passes whose signature chains to Apple Root CA; the development CA is not Apple, so these passes are refused on real iPhones and Apple Watches.';
  const fix = `Put your Pass Type ID certificate, its key and Apple's WWDR (G4) in CERTIFICATES_DIR (${config.certificatesDir}). ${HELP}`;
  const finding = config.production
    ? fail(R.development, 'no certificates: NODE_ENV=production refuses the development identity', fix, why)
    : warn(
        R.development,
        'no certificates in CERTIFICATES_DIR: passes are signed with the development identity and are not installable on devices',
        fix,
        why,
      );
  const ids = {
    passTypeIdentifier: config.passTypeIdentifier ?? DEV_PASS_TYPE_IDENTIFIER,
    teamIdentifier: config.teamIdentifier ?? DEV_TEAM_IDENTIFIER,
  };
  const pems = await readCertificateFiles(join(config.dataDir, 'dev-certificates'), undefined)
    .then((read) => read.pems)
    .catch(() => generateDevelopmentIdentity(ids, now));
  const cert = parseCertificate(pems.signerCert);
  const identity: SigningIdentity = {
    ...pems,
    ...ids,
    isDevelopment: true,
    notAfter: cert === undefined ? now : new Date(cert.validTo),
  };
  return { findings: [finding], identity };
}

/**
 * The identities of CERTIFICATES_DIR's subfolders, each checked like the folder's own files, with the folder's name
 * before its rules (<folder>:signer/validity, …). PASS_TYPE_IDENTIFIER and TEAM_IDENTIFIER name the primary identity only.
 */
export async function checkIdentityFolders(config: Config, now: Date): Promise<Finding[]> {
  if (config.signingPems !== undefined) return [];
  const entries = await readdir(config.certificatesDir, { withFileTypes: true }).catch(() => []);
  const findings: Finding[] = [];
  for (const entry of entries.filter((each) => each.isDirectory() && !each.name.startsWith('.'))) {
    const dir = join(config.certificatesDir, entry.name);
    const named = (finding: Finding): Finding => ({
      ...finding,
      rule: `${entry.name}:${finding.rule}`,
    });
    const folder = await inspectCertificateFolder(dir);
    if (folder.kind === 'empty') continue;
    if (folder.kind === 'incomplete') {
      const why = 'The server refuses to start with an incomplete identity.';
      findings.push(named(fail(R.source, `${dir} ${folder.problem}`, HELP, why)));
      continue;
    }
    try {
      const { pems } = await readCertificateFiles(dir, config.signerKeyPassphrase);
      findings.push(...checkRealIdentity(pems, dir, config, now, {}).findings.map(named));
    } catch (error) {
      if (!(error instanceof InvalidError)) throw error;
      findings.push(named(fail(R.source, error.message, HELP, 'The server refuses to start with it.')));
    }
  }
  return findings;
}

function checkRealIdentity(
  pems: SigningPems,
  source: string,
  config: Config,
  now: Date,
  expected: { passTypeIdentifier?: string | undefined; teamIdentifier?: string | undefined } = config,
): IdentityCheck {
  const findings: Finding[] = [pass(R.source, `Apple certificates from ${source}`)];
  const cert = parseCertificate(pems.signerCert);
  const wwdr = parseCertificate(pems.wwdr);
  const key = parseKey(pems.signerKey, config.signerKeyPassphrase);
  const readable = readability(cert, wwdr, key);
  findings.push(readable.finding);
  if (cert === undefined || wwdr === undefined || typeof key === 'string')
    return { findings, identity: undefined };
  findings.push(checkKeyMatches(cert, key), checkIssuer(cert, wwdr), ...checkWwdr(wwdr, config, now));
  findings.push(
    ...checkSignerCertificate(
      cert,
      {
        passTypeIdentifier: expected.passTypeIdentifier,
        teamIdentifier: expected.teamIdentifier,
        source: 'the configuration (PASS_TYPE_IDENTIFIER / TEAM_IDENTIFIER)',
      },
      now,
    ),
  );
  // Signing still works with a key that matches: the template checks then show what Wallet would say.
  return { findings, identity: cert.checkPrivateKey(key) ? toIdentity(pems, cert, config) : undefined };
}

function toIdentity(pems: SigningPems, cert: X509Certificate, config: Config): SigningIdentity {
  return {
    ...pems,
    ...(config.signerKeyPassphrase === undefined ? {} : { signerKeyPassphrase: config.signerKeyPassphrase }),
    passTypeIdentifier: subjectAttribute(cert.subject, 'UID') ?? '',
    teamIdentifier: subjectAttribute(cert.subject, 'OU') ?? '',
    isDevelopment: false,
    notAfter: new Date(cert.validTo),
  };
}

function parseCertificate(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

/** The key, or why it cannot be used. */
function parseKey(pem: string, passphrase: string | undefined): KeyObject | string {
  try {
    const key = createPrivateKey(passphrase === undefined ? pem : { key: pem, passphrase });
    // The signer (node-forge) reads RSA keys only; Apple issues RSA Pass Type ID certificates.
    return key.asymmetricKeyType === 'rsa'
      ? key
      : `it is a ${key.asymmetricKeyType} key; an RSA key is required`;
  } catch {
    return passphrase === undefined && pem.includes('ENCRYPTED')
      ? 'it is encrypted: set SIGNER_KEY_PASSPHRASE'
      : 'wrong SIGNER_KEY_PASSPHRASE, or not a PEM private key';
  }
}

function readability(
  cert: X509Certificate | undefined,
  wwdr: X509Certificate | undefined,
  key: KeyObject | string,
): { finding: Finding } {
  const problems = [
    cert === undefined ? 'signerCert.pem is not a PEM certificate' : '',
    wwdr === undefined ? 'wwdr.pem is not a PEM certificate' : '',
    typeof key === 'string' ? `signerKey.pem cannot be used: ${key}` : '',
  ].filter(Boolean);
  if (problems.length === 0)
    return { finding: pass(R.readable, 'certificate, key and WWDR are readable PEM') };
  return {
    finding: fail(
      R.readable,
      problems.join('; '),
      `Convert them to PEM (openssl pkcs12 -in Certificates.p12 -clcerts -nokeys -out signerCert.pem, …). ${HELP}`,
      'The server cannot sign passes without them and refuses to start.',
    ),
  };
}

function checkKeyMatches(cert: X509Certificate, key: KeyObject): Finding {
  if (cert.checkPrivateKey(key)) return pass(R.keyMatches, 'signerKey.pem is the key of signerCert.pem');
  return fail(
    R.keyMatches,
    'signerKey.pem is not the private key of signerCert.pem',
    `Export the key together with the certificate from the same .p12 (Keychain: the certificate with its key). ${HELP}`,
    'A signature made with another key does not verify: Wallet refuses the pass and APNs refuses the TLS client certificate.',
  );
}

function checkIssuer(cert: X509Certificate, wwdr: X509Certificate): Finding {
  if (issuedBy(cert, wwdr))
    return pass(R.issuedByWwdr, `signerCert.pem was issued by wwdr.pem (${wwdrGeneration(wwdr)})`);
  const wanted = subjectAttribute(cert.issuer, 'OU');
  return fail(
    R.issuedByWwdr,
    `signerCert.pem was issued by ${oneLine(cert.issuer)}, but wwdr.pem is ${oneLine(wwdr.subject)}`,
    `Download the WWDR intermediate that issued the certificate${wanted === undefined ? '' : ` (generation ${wanted})`} from apple.com/certificateauthority and save it as wwdr.pem (PEM).`,
    'The signature carries wwdr.pem so devices can build the chain to Apple Root CA; with the wrong generation the chain breaks and Wallet refuses the pass.',
  );
}

function checkWwdr(wwdr: X509Certificate, config: Config, now: Date): Finding[] {
  const validity = checkValidity(wwdr, `wwdr.pem (${wwdrGeneration(wwdr)})`, R.wwdr, now);
  if (isAppleWwdr(wwdr)) {
    return [
      validity.status === 'pass'
        ? pass(R.wwdr, `wwdr.pem is Apple's WWDR ${wwdrGeneration(wwdr)}; ${validity.detail}`)
        : validity,
    ];
  }
  const detail = `wwdr.pem (${oneLine(wwdr.subject)}) is not Apple's WWDR intermediate: passes will not install on devices`;
  const fix = `Use Apple's WWDR G4 from apple.com/certificateauthority with the Pass Type ID certificate it issued. ${HELP}`;
  const why = 'iOS trusts only signatures that chain to Apple Root CA.';
  return [
    // As the server: refused in production, unless ALLOW_INSECURE_PRODUCTION marks a staging server.
    config.production && !config.allowInsecureProduction
      ? fail(R.wwdr, detail, fix, why)
      : warn(R.wwdr, detail, fix, why),
    ...(validity.status === 'pass' ? [] : [validity]),
  ];
}
