import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SigningIdentity } from '../../src/signing/identity.js';
import { runOwned as run } from './process.js';

/*
 * A test PKI made with the openssl CLI, independent of the server's own certificate code: a fake WWDR CA and
 * a Pass Type ID certificate issued by it, laid out like Apple's (UID = pass type id, OU = team id).
 */

export interface TestPki {
  dir: string;
  wwdrPem: string;
  wwdrPath: string;
  signerCertPem: string;
  /** As written to signerKey.pem: encrypted when a keyPassphrase was given. */
  signerKeyPem: string;
  passTypeIdentifier: string;
  teamIdentifier: string;
  /** Holds signerCert.pem, signerKey.pem and wwdr.pem. */
  certificatesDir: string;
}

export interface TestPkiOptions {
  passTypeIdentifier?: string;
  teamIdentifier?: string;
  /** Encrypts signerKey.pem (AES-256, PKCS#8) with this passphrase. */
  keyPassphrase?: string;
  /** Issues a signer certificate whose notAfter is already past. */
  expired?: boolean;
  /** How long the signer certificate is valid; a year by default, as Apple's. */
  validDays?: number;
  /** Replaces the signer certificate's subject (openssl -subj form), e.g. to leave out UID or OU. */
  signerSubject?: string;
  /**
   * Names the WWDR CA as Apple's (CN, O, OU=G4) and issues it from a root named "Apple Root CA": stand-ins with
   * this test's own keys, for what the server checks by name in production.
   */
  appleNamedWwdr?: boolean;
  /** Where to create the PKI; a fresh folder under os.tmpdir() by default. */
  dir?: string;
}

export const TEST_PASS_TYPE_IDENTIFIER = 'pass.test.passkit-server';
export const TEST_TEAM_IDENTIFIER = 'TESTTEAM01';

async function openssl(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  await run('openssl', args, { cwd, env: { ...process.env, ...env } });
}

/** Splits a fixed run of openssl arguments (none of them contains a space). */
function words(args: string): string[] {
  return args.split(' ');
}

export async function createTestPki(o: TestPkiOptions = {}): Promise<TestPki> {
  const passTypeIdentifier = o.passTypeIdentifier ?? TEST_PASS_TYPE_IDENTIFIER;
  const teamIdentifier = o.teamIdentifier ?? TEST_TEAM_IDENTIFIER;
  const dir = o.dir ?? (await mkdtemp(join(tmpdir(), 'passkit-test-pki-')));
  const certificatesDir = join(dir, 'certificates');
  const work = join(dir, 'work');
  await mkdir(certificatesDir, { recursive: true });
  await mkdir(work, { recursive: true });
  const wwdrPath = join(certificatesDir, 'wwdr.pem');
  const signerCertPath = join(certificatesDir, 'signerCert.pem');
  const signerKeyPath = join(certificatesDir, 'signerKey.pem');

  // Both keys and the CA are made in parallel: the CA does not need the signer's CSR.
  const caExtensions = [
    ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  ];
  await Promise.all([
    o.appleNamedWwdr
      ? appleNamedWwdr(work, wwdrPath, caExtensions)
      : openssl(work, [
          ...words('req -x509 -newkey rsa:2048 -nodes -keyout wwdr.key -days 3650 -out'),
          wwdrPath,
          ...['-subj', '/CN=Test Worldwide Developer Relations CA/OU=G4/O=Test/C=US'],
          ...caExtensions,
        ]),
    openssl(work, [
      ...words('req -new -newkey rsa:2048 -nodes -keyout signer.key -out signer.csr -subj'),
      o.signerSubject ??
        `/UID=${passTypeIdentifier}/CN=Pass Type ID: ${passTypeIdentifier}/OU=${teamIdentifier}/O=Test/C=US`,
    ]),
  ]);
  await writeFile(
    join(work, 'signer.ext'),
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=clientAuth',
      // Apple's Pass Type ID extension.
      `1.2.840.113635.100.6.1.16=ASN1:UTF8String:${passTypeIdentifier}`,
    ].join('\n'),
  );
  await openssl(work, [
    ...words('x509 -req -in signer.csr -CAkey wwdr.key -set_serial 2 -sha256 -extfile signer.ext'),
    ...['-CA', wwdrPath, '-out', signerCertPath],
    // -days -1 puts notAfter one day in the past: an expired certificate.
    ...['-days', o.expired ? '-1' : String(o.validDays ?? 365)],
  ]);
  if (o.keyPassphrase === undefined) {
    await openssl(work, ['pkey', '-in', 'signer.key', '-out', signerKeyPath]);
  } else {
    await openssl(
      work,
      ['pkey', '-in', 'signer.key', '-out', signerKeyPath, '-aes256', '-passout', 'env:PKI_PASS'],
      {
        PKI_PASS: o.keyPassphrase,
      },
    );
  }
  await rm(work, { recursive: true, force: true });

  const [wwdrPem, signerCertPem, signerKeyPem] = await Promise.all([
    readFile(wwdrPath, 'utf8'),
    readFile(signerCertPath, 'utf8'),
    readFile(signerKeyPath, 'utf8'),
  ]);
  return {
    dir,
    wwdrPem,
    wwdrPath,
    signerCertPem,
    signerKeyPem,
    passTypeIdentifier,
    teamIdentifier,
    certificatesDir,
  };
}

/** wwdr.key and a WWDR certificate named as Apple's, issued by a root named as Apple's (with keys of our own). */
async function appleNamedWwdr(work: string, wwdrPath: string, caExtensions: string[]): Promise<void> {
  await openssl(work, [
    ...words('req -x509 -newkey rsa:2048 -nodes -keyout root.key -days 3650 -out root.pem'),
    ...['-subj', '/C=US/O=Apple Inc./OU=Apple Certification Authority/CN=Apple Root CA', ...caExtensions],
  ]);
  await openssl(work, [
    ...words('req -new -newkey rsa:2048 -nodes -keyout wwdr.key -out wwdr.csr -subj'),
    '/CN=Apple Worldwide Developer Relations Certification Authority/OU=G4/O=Apple Inc./C=US',
  ]);
  await writeFile(
    join(work, 'wwdr.ext'),
    'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n',
  );
  await openssl(work, [
    ...words('x509 -req -in wwdr.csr -CA root.pem -CAkey root.key -set_serial 3 -sha256 -days 3650'),
    ...['-extfile', 'wwdr.ext', '-out', wwdrPath],
  ]);
}

/** The test PKI as the server's SigningIdentity, for tests that sign without loading certificates from disk. */
export function identityFromPki(pki: TestPki): SigningIdentity {
  return {
    signerCert: pki.signerCertPem,
    signerKey: pki.signerKeyPem,
    wwdr: pki.wwdrPem,
    passTypeIdentifier: pki.passTypeIdentifier,
    teamIdentifier: pki.teamIdentifier,
    isDevelopment: true,
    notAfter: new Date(Date.now() + 86_400_000),
  };
}
