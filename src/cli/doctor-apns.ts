import { readFile } from 'node:fs/promises';
import { connect as connectTls, rootCertificates, type TLSSocket } from 'node:tls';
import pino from 'pino';
import type { Config } from '../config.js';
import { type ApnsAuth, createApnsClient } from '../push/apns/client.js';
import type { ApnsOutcome } from '../push/apns/response.js';
import type { SigningIdentity } from '../signing/identity.js';
import { type Finding, fail, pass, warn } from './findings.js';

/*
 * doctor's APNs checks: the environment, a TLS handshake with APNS_ORIGIN, then one real push to a well-formed
 * token no device has. APNs checks the credentials before the token: 400 BadDeviceToken means it accepted
 * them; 403 (InvalidProviderToken, BadCertificate…) means it did not.
 */

export const APNS_RULES = {
  environment: 'apns/production-environment',
  tls: 'apns/tls-handshake',
  credentials: 'apns/credentials-accepted',
} as const;
const R = APNS_RULES;
const SANDBOX_HOSTS = new Set(['api.sandbox.push.apple.com', 'api.development.push.apple.com']);
/** Syntactically valid (64 hex digits), and no device has it. */
export const UNKNOWN_PUSH_TOKEN = '0'.repeat(64);
const TIMEOUT_MS = 10_000;

export interface ApnsCheckOptions {
  /** An extra CA to trust for APNS_ORIGIN (tests: the mock's certificate); NODE_EXTRA_CA_CERTS works too. */
  ca?: string | undefined;
}

export async function checkApns(
  config: Config,
  identity: SigningIdentity | undefined,
  options: ApnsCheckOptions,
): Promise<Finding[]> {
  const findings = [checkEnvironment(config.apns.origin)];
  const auth = await apnsAuth(config, identity);
  if (typeof auth === 'string') {
    findings.push(fail(R.credentials, auth, 'Fix the signing identity or the APNs key first (see above).'));
    return findings;
  }
  const tls = await checkTls(config.apns.origin, auth, options.ca);
  findings.push(tls);
  if (tls.status === 'fail') return findings;
  const topic = identity?.passTypeIdentifier ?? config.passTypeIdentifier ?? '';
  findings.push(await checkCredentials(config, auth, topic, options.ca));
  return findings;
}

function checkEnvironment(origin: string): Finding {
  const host = new URL(origin).hostname;
  if (SANDBOX_HOSTS.has(host)) {
    return warn(
      R.environment,
      `APNS_ORIGIN is the sandbox (${host})`,
      'Unset APNS_ORIGIN (default https://api.push.apple.com).',
      "Apple: Wallet pass updates are delivered only through APNs' production environment; sandbox pushes never reach a pass.",
    );
  }
  return pass(R.environment, `APNS_ORIGIN is ${origin}`);
}

async function apnsAuth(config: Config, identity: SigningIdentity | undefined): Promise<ApnsAuth | string> {
  if (config.apns.auth === 'certificate') {
    if (identity === undefined) return 'certificate auth needs a usable signing identity';
    return {
      kind: 'certificate',
      certPem: identity.signerCert,
      keyPem: identity.signerKey,
      ...(identity.signerKeyPassphrase === undefined ? {} : { passphrase: identity.signerKeyPassphrase }),
    };
  }
  const teamId = config.apns.teamId ?? identity?.teamIdentifier;
  if (config.apns.keyId === undefined || teamId === undefined)
    return 'token auth needs APNS_KEY_ID and a team id';
  const keyPem = config.apns.keyPem ?? (await readKey(config.apns.keyFile));
  if (keyPem === undefined) return `APNS_KEY_FILE (${config.apns.keyFile ?? 'unset'}) cannot be read`;
  return { kind: 'token', keyPem, keyId: config.apns.keyId, teamId };
}

async function readKey(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  return readFile(path, 'utf8').catch(() => undefined);
}

function checkTls(origin: string, auth: ApnsAuth, ca: string | undefined): Promise<Finding> {
  const url = new URL(origin);
  const clientCertificate =
    auth.kind === 'certificate' ? { cert: auth.certPem, key: auth.keyPem, passphrase: auth.passphrase } : {};
  return new Promise((resolve) => {
    const socket: TLSSocket = connectTls({
      host: url.hostname,
      port: Number(url.port || 443),
      ...(/^[\d.]+$/.test(url.hostname) ? {} : { servername: url.hostname }),
      ALPNProtocols: ['h2'],
      ...(ca === undefined ? {} : { ca: [...rootCertificates, ca] }),
      ...clientCertificate,
    });
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    socket.once('secureConnect', () => {
      const alpn = socket.alpnProtocol;
      const protocol = socket.getProtocol();
      socket.end();
      resolve(
        alpn === 'h2'
          ? pass(R.tls, `TLS handshake with ${url.host} (${protocol}, HTTP/2)`)
          : fail(
              R.tls,
              `${url.host} did not agree to HTTP/2 (ALPN ${String(alpn)})`,
              'Point APNS_ORIGIN at APNs (https://api.push.apple.com).',
              'APNs speaks HTTP/2 only.',
            ),
      );
    });
    socket.once('error', (error) => {
      resolve(
        fail(
          R.tls,
          `TLS handshake with ${url.host} failed: ${(error as NodeJS.ErrnoException).code ?? error.message}`,
          'Allow outbound TCP 443 to api.push.apple.com (firewall, proxy); if a proxy inspects TLS, trust its CA with NODE_EXTRA_CA_CERTS.',
          'Every update push goes over this connection.',
        ),
      );
    });
  });
}

async function checkCredentials(
  config: Config,
  auth: ApnsAuth,
  topic: string,
  ca: string | undefined,
): Promise<Finding> {
  const client = createApnsClient({
    origin: config.apns.origin,
    auth,
    pushType: config.apns.pushType,
    requestTimeoutMs: TIMEOUT_MS,
    connections: 1,
    log: pino({ level: 'silent' }),
    ...(ca === undefined ? {} : { ca }),
  });
  try {
    return credentialsFinding(await client.send(UNKNOWN_PUSH_TOKEN, topic), auth.kind, topic);
  } finally {
    await client.close();
  }
}

/** Reasons that come after APNs accepted the credentials (the token is what it refused). */
const ACCEPTED_REASONS = new Set([
  'BadDeviceToken',
  'Unregistered',
  'ExpiredToken',
  'DeviceTokenNotForTopic',
]);

function credentialsFinding(outcome: ApnsOutcome, kind: ApnsAuth['kind'], topic: string): Finding {
  if (outcome.kind === 'delivered') return pass(R.credentials, `APNs accepted a push to topic ${topic}`);
  if (ACCEPTED_REASONS.has(outcome.reason)) {
    return pass(
      R.credentials,
      `APNs answered ${outcome.reason} for an unknown device token: the ${kind} credentials were accepted for topic ${topic}`,
    );
  }
  const why = 'Without accepted credentials no update push is delivered: passes on devices never update.';
  return fail(R.credentials, `APNs refused the push: ${outcome.reason}`, fixFor(outcome.reason, kind), why);
}

function fixFor(reason: string, kind: ApnsAuth['kind']): string {
  if (reason === 'InvalidProviderToken' || reason === 'MissingProviderToken') {
    return 'The .p8 key, APNS_KEY_ID and APNS_TEAM_ID must belong together: check the key id and team id at developer.apple.com (Keys), or use APNS_AUTH=certificate.';
  }
  if (reason === 'ExpiredProviderToken')
    return "Check this machine's clock (provider tokens are refused when they look older than an hour).";
  if (reason === 'TopicDisallowed' || reason === 'BadCertificate' || reason === 'BadCertificateEnvironment') {
    return 'Push with the Pass Type ID certificate of this pass type (not an app push certificate): its UID must be the topic.';
  }
  if (kind === 'certificate') {
    return 'APNs dropped the connection: the client certificate is probably not an Apple-issued Pass Type ID certificate (the development identity never works with APNs).';
  }
  return 'Check network access to APNS_ORIGIN and try again.';
}
