import type { X509Certificate } from 'node:crypto';
import { daysLeft, oneLine, RENEWAL_WARNING_MS, subjectAttribute } from '../signing/identity.js';
import { certificateExtensions } from './cms.js';
import { type Finding, fail, pass, warn } from './findings.js';

/*
 * The signer certificate rules shared by `validate` (against pass.json) and `doctor` (against the
 * configuration). Apple: a pass is signed with a Pass Type ID certificate whose subject UID is the
 * passTypeIdentifier and OU the teamIdentifier, issued by the Apple WWDR intermediate, under Apple's root.
 */

/** Apple's marker extension on Pass Type ID certificates. */
export const PASS_TYPE_ID_EXTENSION = '1.2.840.113635.100.6.1.16';
const HELP = 'See certificates.example/README.md.';

export const RULES = {
  uid: 'signer/pass-type-identifier',
  ou: 'signer/team-identifier',
  validity: 'signer/validity',
  extension: 'signer/pass-type-id-extension',
  chain: 'signer/chain',
} as const;

/** Node prints a subject one attribute per line ("UID=pass.x\nCN=…\nOU=TEAM"). */
export interface ExpectedIds {
  passTypeIdentifier: string | undefined;
  teamIdentifier: string | undefined;
  /** Where the expected values come from, for the messages: "pass.json" or "the configuration". */
  source: string;
}

/** UID / OU against the expected ids, validity, and the Pass Type ID extension. */
export function checkSignerCertificate(cert: X509Certificate, expected: ExpectedIds, now: Date): Finding[] {
  return [
    checkSubject(cert, 'UID', expected.passTypeIdentifier, 'passTypeIdentifier', RULES.uid, expected.source),
    checkSubject(cert, 'OU', expected.teamIdentifier, 'teamIdentifier', RULES.ou, expected.source),
    checkValidity(cert, 'the signer certificate', RULES.validity, now),
    checkPassTypeExtension(cert),
  ];
}

function checkSubject(
  cert: X509Certificate,
  attribute: 'UID' | 'OU',
  expected: string | undefined,
  key: string,
  rule: string,
  source: string,
): Finding {
  const actual = subjectAttribute(cert.subject, attribute);
  const why = `Apple: the signing certificate's ${attribute} must equal the pass's ${key}; Wallet refuses the pass otherwise, without saying why.`;
  if (actual === undefined) {
    return fail(
      rule,
      `the signer certificate has no ${attribute} in its subject (${oneLine(cert.subject)}): it is not a Pass Type ID certificate`,
      `Create a Pass Type ID certificate at developer.apple.com (Certificates, IDs & Profiles → Pass Type IDs). ${HELP}`,
      why,
    );
  }
  if (expected === undefined || expected === actual) {
    return pass(
      rule,
      `certificate ${attribute} is ${actual}${expected === undefined ? '' : `, as ${source} says`}`,
    );
  }
  return fail(
    rule,
    `certificate ${attribute} is "${actual}" but ${source} says ${key} "${expected}"`,
    `Use the certificate made for ${key} "${expected}", or make ${source} say "${actual}".`,
    why,
  );
}

export function checkValidity(cert: X509Certificate, what: string, rule: string, now: Date): Finding {
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  const why =
    'Wallet refuses passes signed with a certificate outside its validity, and APNs refuses it too.';
  if (notAfter.getTime() <= now.getTime()) {
    return fail(
      rule,
      `${what} expired on ${notAfter.toISOString()}`,
      `Create a new certificate for the Pass Type ID at developer.apple.com and replace it. ${HELP}`,
      why,
    );
  }
  if (notBefore.getTime() > now.getTime()) {
    return fail(rule, `${what} is not valid before ${notBefore.toISOString()}`, 'Check the clock.', why);
  }
  const days = daysLeft({ notAfter }, now);
  if (notAfter.getTime() - now.getTime() < RENEWAL_WARNING_MS) {
    return warn(
      rule,
      `${what} expires in ${days} days (${notAfter.toISOString()})`,
      `Renew it now at developer.apple.com; after it expires passes no longer install or update. ${HELP}`,
      why,
    );
  }
  return pass(rule, `${what} is valid until ${notAfter.toISOString()} (${days} days)`);
}

function checkPassTypeExtension(cert: X509Certificate): Finding {
  if (certificateExtensions(cert).has(PASS_TYPE_ID_EXTENSION)) {
    return pass(
      RULES.extension,
      `the certificate carries the Pass Type ID extension (${PASS_TYPE_ID_EXTENSION})`,
    );
  }
  return warn(
    RULES.extension,
    `the certificate lacks Apple's Pass Type ID extension ${PASS_TYPE_ID_EXTENSION}`,
    `Sign with the Pass Type ID certificate (not an app, APNs or development certificate). ${HELP}`,
    "Apple's Pass Type ID certificates carry this extension; a certificate without it is usually another kind, which Wallet and APNs refuse for passes.",
  );
}

/** "G4" for Apple's WWDR intermediates (the OU names the generation; the first one had none). */
export function wwdrGeneration(cert: X509Certificate): string {
  return subjectAttribute(cert.subject, 'OU') ?? 'G1';
}

/** signer → issuer: named as the issuer and its signature verifies with the issuer's key. */
export function issuedBy(signer: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return signer.checkIssued(issuer) && signer.verify(issuer.publicKey);
  } catch {
    return false;
  }
}
