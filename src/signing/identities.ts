/*
 * Every pass type identity the server signs and pushes for: those configured at start (the primary one of
 * CERTIFICATES_DIR's files, the SIGNER_*_PEM variables or the development identity, and one per subfolder of
 * CERTIFICATES_DIR) and those added through the admin API, which are stored in
 * the database with their private keys sealed (src/signing/sealed-keys.ts). A pass belongs to the identity of its
 * passTypeIdentifier. An identity stored for the configured pass type identifier takes its place, so that the
 * configured certificate can be rotated without a restart; removing the stored one brings the configured one back.
 *
 * Each instance keeps the identities in memory and re-reads those whose row changed: at once after its own
 * change, when asked for a pass type identifier it does not know, and every REFRESH_INTERVAL_MS for the changes of
 * other instances.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { IdentitiesRepository, IdentityRecord } from '../db/identities.js';
import { ConflictError, InvalidError, NotFoundError, StartupError } from '../errors.js';
import type { Logger } from '../logger.js';
import {
  assertAppleWwdr,
  checkIdentity,
  isExpired,
  logExpiry,
  type PemLabels,
  pemsFromP12,
  RENEWAL_WARNING_MS,
  type SigningIdentity,
  type SigningPems,
} from './identity.js';
import { openKey, sealKey } from './sealed-keys.js';

/** An APNs token-auth key of an identity's own (Apple: a .p8 key with its key id, for the team). */
export interface ApnsTokenKey {
  keyPem: string;
  keyId: string;
  teamId: string;
}

export interface PassTypeIdentity {
  signing: SigningIdentity;
  /** configuration: loaded at start; api: added or rotated through the admin API, stored in the database. */
  source: 'configuration' | 'api';
  /** Token auth to APNs with a key of its own; without one, the configured APNs auth (certificate by default). */
  apnsToken?: ApnsTokenKey | undefined;
  /** SHA-256 of the certificate (hex): tells which certificate is in use, e.g. after a rotation. */
  certificateSha256: string;
}

/** An identity as the admin API receives it: PEMs, or Keychain's .p12 export, with the WWDR certificate. */
export interface IdentityUpload {
  signer: { certificate: string; privateKey: string } | { p12: Buffer };
  passphrase?: string | undefined;
  wwdr: string;
  /** Its team is the certificate's when not given. */
  apnsToken?: (Omit<ApnsTokenKey, 'teamId'> & { teamId?: string | undefined }) | undefined;
}

export interface Identities {
  /** What a pass is created with when its request names no pass type identifier. */
  primary(): PassTypeIdentity;
  /** Every identity, by pass type identifier. */
  list(): PassTypeIdentity[];
  /** The identity of a pass type identifier; one this instance does not know yet is looked for in the database. */
  find(passTypeIdentifier: string): Promise<PassTypeIdentity | undefined>;
  /** The identity as this instance knows it now, without reading the database (inside a transaction). */
  get(passTypeIdentifier: string): PassTypeIdentity | undefined;
  /** Adds an identity (`expect: 'new'`) or rotates the certificate of one (`expect: passTypeIdentifier`). */
  save(
    upload: IdentityUpload,
    expect: 'new' | string,
  ): Promise<{ identity: PassTypeIdentity; added: boolean }>;
  /** Removes an identity added through the API (a configured one comes back in its place). */
  remove(passTypeIdentifier: string): Promise<void>;
  /**
   * Reads the stored identities, then re-reads them every refreshIntervalMs. Called once at start: a stored key
   * that cannot be opened then throws StartupError (later, the identity read before stays in use).
   */
  load(): Promise<void>;
  /** Stops the periodic refresh. */
  close(): void;
}

export interface IdentitiesOptions {
  /** The identities of the configuration, the primary one first. */
  configured: readonly [SigningIdentity, ...SigningIdentity[]];
  repository: IdentitiesRepository;
  /** IDENTITY_ENCRYPTION_KEY: seals and opens the stored private keys; without it none can be added. */
  encryptionKey: Buffer | undefined;
  /** NODE_ENV=production: an uploaded WWDR certificate must be Apple's, unless allowInsecureProduction. */
  production: boolean;
  allowInsecureProduction?: boolean;
  clock: Clock;
  log: Logger;
  refreshIntervalMs?: number;
}

const REFRESH_INTERVAL_MS = 10_000;
const DAY_MS = 86_400_000;

const PEM_LABELS: PemLabels = {
  signerCert: 'certificate',
  signerKey: 'privateKey',
  wwdr: 'wwdr',
  passphrase: 'passphrase',
};
const P12_LABELS: PemLabels = {
  signerCert: 'p12 (its certificate)',
  signerKey: 'p12 (its private key)',
  wwdr: 'wwdr',
  passphrase: 'passphrase',
};

export function certificateSha256(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

/**
 * A stored identity with its keys opened and checked as at start (the server and `doctor` read alike). Throws
 * StartupError when IDENTITY_ENCRYPTION_KEY is missing or is not the key it was stored with.
 */
export function openStoredIdentity(record: IdentityRecord, secret: Buffer | undefined): PassTypeIdentity {
  const id = record.passTypeIdentifier;
  if (secret === undefined) {
    throw new StartupError(
      `The database holds the identity ${id}, added through the admin API, but IDENTITY_ENCRYPTION_KEY is not set: ` +
        'set it to the key it was added with',
    );
  }
  const signerKey = openKey(record.sealedSignerKey, secret, id, 'signer-key');
  const apnsKey = record.apnsToken && openKey(record.apnsToken.sealedKey, secret, id, 'apns-key');
  if (signerKey === undefined || (record.apnsToken && apnsKey === undefined)) {
    throw new StartupError(
      `IDENTITY_ENCRYPTION_KEY does not open the keys of the identity ${id}: they were sealed with another key`,
    );
  }
  const signing = checkIdentity(
    { signerCert: record.signerCert, signerKey, wwdr: record.wwdr },
    PEM_LABELS,
    undefined,
    false,
  );
  return {
    signing,
    source: 'api',
    ...(record.apnsToken && apnsKey
      ? { apnsToken: { keyPem: apnsKey, keyId: record.apnsToken.keyId, teamId: record.apnsToken.teamId } }
      : {}),
    certificateSha256: certificateSha256(record.signerCert),
  };
}

/** The configured identity and, once load() has read them, the stored ones. */
export function createIdentities(o: IdentitiesOptions): Identities {
  const log = o.log.child({ component: 'identities' });
  const fromConfiguration = (signing: SigningIdentity): PassTypeIdentity => ({
    signing,
    source: 'configuration',
    certificateSha256: certificateSha256(signing.signerCert),
  });
  const [first, ...others] = o.configured;
  const primaryConfigured = fromConfiguration(first);
  const primaryId = first.passTypeIdentifier;
  const configured = new Map<string, PassTypeIdentity>();
  for (const identity of [primaryConfigured, ...others.map(fromConfiguration)]) {
    const id = identity.signing.passTypeIdentifier;
    if (configured.has(id)) {
      throw new StartupError(`CERTIFICATES_DIR holds two identities of ${id}: keep one of them`);
    }
    configured.set(id, identity);
  }
  /** The stored identities, with the row version each was read at. */
  let stored = new Map<string, { identity: PassTypeIdentity; version: number }>();
  /** True until load() has read them: a stored identity that cannot be opened then stops the start. */
  let starting = true;
  let timer: NodeJS.Timeout | undefined;
  /** When each identity's expiry was last logged: a certificate about to expire is warned of once a day. */
  const expiryLogged = new Map<string, number>(
    o.configured.map((each) => [each.passTypeIdentifier, o.clock.now().getTime()]),
  );

  /** Re-reads the stored identities whose row changed since this instance read it. */
  const refresh = async (): Promise<void> => {
    const versions = await o.repository.versions();
    const unchanged =
      versions.size === stored.size &&
      [...versions].every(([id, version]) => stored.get(id)?.version === version);
    if (unchanged) return;
    const next = new Map<string, { identity: PassTypeIdentity; version: number }>();
    for (const record of await o.repository.list()) {
      const known = stored.get(record.passTypeIdentifier);
      const version = record.updatedAt.getTime();
      if (known?.version === version) {
        next.set(record.passTypeIdentifier, known);
        continue;
      }
      let identity: PassTypeIdentity;
      try {
        identity = openStoredIdentity(record, o.encryptionKey);
      } catch (error) {
        // At start this stops the server; later (another instance stored it), the one read before stays in use.
        if (starting) throw error;
        log.error(
          { err: error, passTypeIdentifier: record.passTypeIdentifier },
          'stored identity not loaded',
        );
        if (known) next.set(record.passTypeIdentifier, known);
        continue;
      }
      logExpiry(identity.signing, `The certificate of ${record.passTypeIdentifier}`, log, o.clock.now());
      expiryLogged.set(record.passTypeIdentifier, o.clock.now().getTime());
      next.set(record.passTypeIdentifier, { identity, version });
    }
    stored = next;
  };

  let refreshing: Promise<void> | undefined;
  /** One refresh at a time; callers during one share it. */
  const refreshOnce = (): Promise<void> => {
    refreshing ??= refresh().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  };

  /** After this instance's own change: a refresh already under way may have read the rows before it. */
  const refreshAfterChange = async (): Promise<void> => {
    await refreshing?.catch(() => undefined);
    await refreshOnce();
  };

  const current = (id: string): PassTypeIdentity | undefined =>
    stored.get(id)?.identity ?? configured.get(id);
  const list = (): PassTypeIdentity[] =>
    [...new Set([...configured.keys(), ...stored.keys()])]
      .sort()
      .map((id) => current(id))
      .filter((identity) => identity !== undefined);

  const warnOfExpiry = () => {
    const now = o.clock.now();
    for (const { signing } of list()) {
      const last = expiryLogged.get(signing.passTypeIdentifier) ?? 0;
      if (now.getTime() - last < DAY_MS || signing.notAfter.getTime() - now.getTime() >= RENEWAL_WARNING_MS)
        continue;
      logExpiry(signing, `The certificate of ${signing.passTypeIdentifier}`, log, now);
      expiryLogged.set(signing.passTypeIdentifier, now.getTime());
    }
  };

  const checkUpload = (upload: IdentityUpload): PassTypeIdentity => {
    const { pems, labels } = uploadedPems(upload);
    const { signerKeyPassphrase, ...checked } = checkIdentity(pems, labels, upload.passphrase, false);
    // The key is kept without its passphrase (the seal protects it): the passphrase is not stored.
    const signing = { ...checked, signerKey: unencrypted(checked.signerKey, signerKeyPassphrase) };
    if (o.production) assertAppleWwdr(signing, labels, { ...o, log });
    if (isExpired(signing, o.clock.now())) {
      throw new InvalidError(
        `${labels.signerCert} expired on ${signing.notAfter.toISOString()}: Wallet rejects passes signed with it`,
      );
    }
    const { apnsToken } = upload;
    if (apnsToken) checkApnsKey(apnsToken.keyPem);
    return {
      signing,
      source: 'api',
      ...(apnsToken
        ? { apnsToken: { ...apnsToken, teamId: apnsToken.teamId ?? signing.teamIdentifier } }
        : {}),
      certificateSha256: certificateSha256(signing.signerCert),
    };
  };

  return {
    primary: () => current(primaryId) ?? primaryConfigured,
    list,
    get: current,
    async find(passTypeIdentifier) {
      const known = current(passTypeIdentifier);
      if (known) return known;
      await refreshOnce();
      return current(passTypeIdentifier);
    },
    async save(upload, expect) {
      const secret = o.encryptionKey;
      if (secret === undefined) {
        throw new ConflictError(
          'IDENTITY_ENCRYPTION_KEY is not set, so identities cannot be added through the API (their private keys ' +
            'are stored encrypted with it); set it, or use CERTIFICATES_DIR',
        );
      }
      const identity = checkUpload(upload);
      const { passTypeIdentifier: id, teamIdentifier } = identity.signing;
      await refreshOnce();
      const existing = current(id);
      if (expect === 'new' && existing) throw exists(id);
      if (expect !== 'new') {
        if (expect !== id) {
          throw new InvalidError(`The certificate is for ${id} (its subject UID), not ${expect}`);
        }
        if (!existing) throw new NotFoundError(`No identity ${id}: add it with POST /admin/identities`);
        if (existing.signing.teamIdentifier !== teamIdentifier) {
          throw new InvalidError(
            `The certificate is of team ${teamIdentifier} (its subject OU), but ${id} is of team ` +
              `${existing.signing.teamIdentifier}: a pass type identifier belongs to one team`,
          );
        }
      }
      const added = await o.repository.save(
        {
          passTypeIdentifier: id,
          teamIdentifier,
          signerCert: identity.signing.signerCert,
          sealedSignerKey: sealKey(identity.signing.signerKey, secret, id, 'signer-key'),
          wwdr: identity.signing.wwdr,
          notAfter: identity.signing.notAfter,
          apnsToken: identity.apnsToken && {
            keyId: identity.apnsToken.keyId,
            teamId: identity.apnsToken.teamId,
            sealedKey: sealKey(identity.apnsToken.keyPem, secret, id, 'apns-key'),
          },
        },
        o.clock.now(),
        expect === 'new' ? 'add' : 'replace',
      );
      // Another request added it since the check above.
      if (expect === 'new' && !added) throw exists(id);
      await refreshAfterChange();
      log.info(
        { passTypeIdentifier: id, notAfter: identity.signing.notAfter.toISOString(), added },
        added ? 'identity added' : 'identity certificate rotated',
      );
      return { identity: current(id) ?? identity, added };
    },
    async remove(passTypeIdentifier) {
      const configuredHere = configured.has(passTypeIdentifier);
      const outcome = await o.repository.remove(passTypeIdentifier, { evenWithPasses: configuredHere });
      if (outcome === 'in-use') {
        throw new ConflictError(
          `Passes of ${passTypeIdentifier} remain: delete them first, since nothing else could sign their changes`,
        );
      }
      if (outcome === 'absent') {
        throw configuredHere
          ? new ConflictError(
              `The identity ${passTypeIdentifier} is configured (CERTIFICATES_DIR or SIGNER_*_PEM), not added ` +
                'through the API: change the configuration and restart to remove it',
            )
          : new NotFoundError(`No identity ${passTypeIdentifier}`);
      }
      await refreshAfterChange();
      log.info({ passTypeIdentifier }, 'identity removed');
    },
    async load() {
      await refreshOnce();
      starting = false;
      timer ??= setInterval(() => {
        refreshOnce()
          .catch((error: unknown) =>
            log.error({ err: error }, 'identities not refreshed; the ones read before stay in use'),
          )
          .finally(warnOfExpiry);
      }, o.refreshIntervalMs ?? REFRESH_INTERVAL_MS);
      timer.unref();
    },
    close: () => clearInterval(timer),
  };
}

const exists = (id: string) =>
  new ConflictError(`The identity ${id} exists: rotate its certificate with PUT /admin/identities/${id}`);

function uploadedPems(upload: IdentityUpload): { pems: SigningPems; labels: PemLabels } {
  if ('p12' in upload.signer) {
    const fromP12 = pemsFromP12(upload.signer.p12, upload.passphrase, 'p12', P12_LABELS);
    return { pems: { ...fromP12, wwdr: upload.wwdr }, labels: P12_LABELS };
  }
  const { certificate, privateKey } = upload.signer;
  return { pems: { signerCert: certificate, signerKey: privateKey, wwdr: upload.wwdr }, labels: PEM_LABELS };
}

/** A key checkIdentity accepted, as unencrypted PKCS#8 PEM (which node-forge reads too). */
function unencrypted(pem: string, passphrase: string | undefined): string {
  const key = createPrivateKey(passphrase === undefined ? pem : { key: pem, passphrase });
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Apple's APNs auth keys are EC P-256 keys in PKCS#8 PEM (the .p8 file); the provider token is signed ES256. */
function checkApnsKey(pem: string): void {
  let curve: string | undefined;
  try {
    curve = createPrivateKey(pem).asymmetricKeyDetails?.namedCurve;
  } catch {
    curve = undefined;
  }
  if (curve !== 'prime256v1') {
    throw new InvalidError(
      'apns.key must be the .p8 key from your Apple developer account (an EC P-256 private key in PEM)',
    );
  }
}
