import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { StartupError } from './errors.js';
import { projectRoot } from './paths.js';

/*
 * The only reader of process.env. Every variable is documented in .env.example; an invalid value stops the
 * start with a message that names the variable.
 */
const optionalText = z
  .string()
  .trim()
  .transform((value) => (value === '' ? undefined : value))
  .optional();

const port = z.coerce.number().int().min(0).max(65535);

/*
 * PEM contents from a secret store. Some stores and .env files keep a value on one line with literal "\n";
 * a PEM without any real line break is unreadable, so those are turned back into line breaks.
 */
const pemText = optionalText.transform((value) =>
  value !== undefined && !value.includes('\n') ? value.replaceAll('\\n', '\n') : value,
);

/** Per client address; the limits are described in src/plugins/limit-keys.ts. */
export interface RateLimitSettings {
  /** Requests per minute per client address, for each of /v1, /admin and /download. 0 turns the limit off. */
  perMinute: number;
  /** Apple's endpoints: requests per minute naming one device library identifier, per address. 0: off. */
  perDevicePerMinute: number;
  /** Apple's endpoints: downloads per minute of one pass, per address. 0: off. */
  perPassPerMinute: number;
  /** Failed authentications per minute per client address and pass (or admin token) before that target gets 429. */
  authFailuresPerMinute: number;
}

/**
 * A crowd behind one address (carrier NAT: a stadium's ticket holders after a gate change, every device registering,
 * then listing and fetching) is served up to about 3,000 devices a minute; one device or pass is held to what no
 * honest one sends. The reasoning is in docs/operations.md ("Request limits and client addresses").
 */
export const defaultRateLimits: RateLimitSettings = {
  perMinute: 10_000,
  perDevicePerMinute: 120,
  perPassPerMinute: 1000,
  authFailuresPerMinute: 10,
};

/**
 * The HTTP server's timeouts and connection cap (Node's http.Server settings), in milliseconds. Without them a client
 * that sends nothing, or a byte now and then, holds its connection (and a file descriptor) for ever.
 */
export interface ConnectionLimits {
  /** Longest a client may take to send a whole request, headers and body; then 408 and the connection is closed. */
  requestTimeoutMs: number;
  /** Longest a client may take to send a request's headers, from connecting or from its first byte; then 408. */
  headersTimeoutMs: number;
  /** How long a keep-alive connection is kept open without a request. */
  keepAliveTimeoutMs: number;
  /** A connection with nothing received or sent for this long is closed, also while its request is handled. */
  idleTimeoutMs: number;
  /** Open connections at most; those beyond it are closed as they arrive. */
  maxConnections: number;
}

/*
 * The reasoning is in docs/operations.md ("Timeouts and connections"). Keep-alive outlasts the 60 s idle timeout of
 * common load balancers (AWS ALB, nginx), so that they close an idle connection first and never send a request on
 * one this server is closing (Fastify's own default, 72 s, for that reason). 4,000 connections stay under a
 * 4,096 open-file limit with room for the database pool and files; Node raises its soft limit to the hard one.
 */
export const defaultConnectionLimits: ConnectionLimits = {
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 72_000,
  idleTimeoutMs: 60_000,
  maxConnections: 4000,
};

/** POST /v1/log: who may send how much, and how much is kept (src/routes/wallet/log.ts). */
export interface DeviceLogSettings {
  /** Requests a minute per client address (RATE_LIMIT_PER_MINUTE if that is lower). */
  requestsPerMinute: number;
  /** Messages older than this many days are deleted. */
  retentionDays: number;
  /** Messages kept at most; the oldest are deleted first. */
  maxRows: number;
}

/** Wallet posts a log only when something went wrong; the newest 100,000 messages are plenty to see what. */
export const defaultDeviceLogs: DeviceLogSettings = {
  requestsPerMinute: 20,
  retentionDays: 30,
  maxRows: 100_000,
};

/** Fastify's trustProxy: believe X-Forwarded-For from any peer (true), from none (false), or from these proxies. */
export type TrustProxy = boolean | string[];

// proxy-addr's names for address ranges, an address, or an address with a prefix length (CIDR).
function isProxyAddress(entry: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true;
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128));
}

/**
 * What an instance runs (ROLES): `api` Apple's JSON endpoints and the admin JSON API; `downloads` pass downloads and
 * their signing (Wallet's latest pass, the admin .pkpass, download links); `workers` the push worker, the bulk
 * runner and the deletion of old device logs. One image runs as any subset, so each can scale on its own machines; all three by default.
 */
export const allRoles = ['api', 'downloads', 'workers'] as const;
export type Role = (typeof allRoles)[number];

const rolesSchema = optionalText.transform((value, context): ReadonlySet<Role> => {
  if (value === undefined) return new Set(allRoles);
  const names = value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const wrong = names.filter((name) => !(allRoles as readonly string[]).includes(name));
  if (names.length === 0 || wrong.length > 0) {
    context.addIssue({
      code: 'custom',
      message: `must be a comma-separated list of ${allRoles.join(', ')}; not ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return new Set(allRoles.filter((role) => names.includes(role)));
});

const trustProxySchema = optionalText.transform((value, context): TrustProxy => {
  if (value === undefined || /^(false|no|off|0)$/i.test(value)) return false;
  if (/^(true|yes|on)$/i.test(value)) return true;
  // Fastify ignores a hop count (it cannot tell a proxy from a client that adds headers), so it is refused here.
  const entries = value.split(',').map((entry) => entry.trim());
  const wrong = entries.filter((entry) => !isProxyAddress(entry));
  if (wrong.length > 0) {
    context.addIssue({
      code: 'custom',
      message: `must be true, false, or a comma-separated list of the proxies' addresses or CIDRs (or loopback, linklocal, uniquelocal); not ${wrong.map((entry) => JSON.stringify(entry)).join(', ')}`,
    });
    return z.NEVER;
  }
  return entries;
});

/** A timeout in whole seconds (1 to 3600), with its default given in milliseconds. */
const seconds = (defaultMs: number) =>
  z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(defaultMs / 1000);

const environmentSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: port.default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  TRUST_PROXY: trustProxySchema,
  ROLES: rolesSchema,
  DOCS_ENABLED: optionalText.pipe(z.enum(['true', 'false'], { error: 'must be true or false' }).optional()),
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).default(defaultRateLimits.perMinute),
  RATE_LIMIT_PER_DEVICE_PER_MINUTE: z.coerce
    .number()
    .int()
    .min(0)
    .default(defaultRateLimits.perDevicePerMinute),
  RATE_LIMIT_PER_PASS_PER_MINUTE: z.coerce.number().int().min(0).default(defaultRateLimits.perPassPerMinute),
  AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(1).default(defaultRateLimits.authFailuresPerMinute),
  DATABASE_URL: optionalText.pipe(
    z
      .string()
      .regex(
        /^postgres(ql)?:\/\//,
        'must be a postgres:// or postgresql:// URL (leave it unset for the embedded database)',
      )
      .optional(),
  ),
  DATA_DIR: z.string().min(1).default('./data'),
  PUBLIC_URL: optionalText.pipe(
    z
      .url({
        protocol: /^https?$/,
        error: 'must be an absolute http(s) URL, e.g. https://passes.example.com',
      })
      .optional(),
  ),
  ADMIN_TOKEN: optionalText.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  ALLOW_INSECURE_PRODUCTION: z
    .enum(['true', 'false'], { error: 'must be true or false' })
    .default('false')
    .transform((value) => value === 'true'),
  CERTIFICATES_DIR: z.string().min(1).default('./certificates'),
  SIGNER_CERT_PEM: pemText,
  SIGNER_KEY_PEM: pemText,
  WWDR_CERT_PEM: pemText,
  SIGNER_KEY_PASSPHRASE: optionalText,
  // 32 random bytes (openssl rand -base64 32): seals the private keys of identities added through the admin API.
  IDENTITY_ENCRYPTION_KEY: optionalText.pipe(
    z
      .string()
      .transform((text) => encryptionKey(text))
      .refine((key) => key !== undefined, {
        error: 'must be 32 bytes in base64 (44 characters) or hex (64), e.g. from: openssl rand -base64 32',
      })
      .optional(),
  ),
  PASS_TYPE_IDENTIFIER: optionalText,
  TEAM_IDENTIFIER: optionalText,
  // Unset: the templates shipped in models/ beside package.json, wherever the process was started from.
  MODELS_DIR: optionalText,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Unset: /metrics is served on PORT. Set: only on this port (keep it inside the cluster).
  METRICS_PORT: optionalText.pipe(z.coerce.number<string | undefined>().int().min(1).max(65535).optional()),
  // Pass update pushes work only in APNs' production environment (Apple's Wallet documentation).
  APNS_ORIGIN: z
    .url({ protocol: /^https$/, error: 'must be an https URL' })
    .default('https://api.push.apple.com'),
  APNS_AUTH: z.enum(['token', 'certificate']).optional(),
  APNS_KEY_FILE: optionalText,
  APNS_KEY_PEM: pemText,
  APNS_KEY_ID: optionalText,
  APNS_TEAM_ID: optionalText,
  APNS_PUSH_TYPE: z.enum(['background', 'alert']).default('background'),
  APNS_PRIORITY: optionalText.pipe(z.enum(['5', '10']).optional()),
  APNS_MAX_CONCURRENT_STREAMS: z.coerce.number().int().min(1).max(10_000).default(1000),
  PUSH_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(10),
  PUSH_LEASE_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  DOWNLOAD_LINK_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .default(7 * 24 * 3600),
  HTTP_REQUEST_TIMEOUT_SECONDS: seconds(defaultConnectionLimits.requestTimeoutMs),
  HTTP_HEADERS_TIMEOUT_SECONDS: seconds(defaultConnectionLimits.headersTimeoutMs),
  HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: seconds(defaultConnectionLimits.keepAliveTimeoutMs),
  HTTP_IDLE_TIMEOUT_SECONDS: seconds(defaultConnectionLimits.idleTimeoutMs),
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(defaultConnectionLimits.maxConnections),
  DEVICE_LOG_REQUESTS_PER_MINUTE: z.coerce.number().int().min(1).default(defaultDeviceLogs.requestsPerMinute),
  DEVICE_LOG_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3650)
    .default(defaultDeviceLogs.retentionDays),
  DEVICE_LOG_MAX_ROWS: z.coerce.number().int().min(1).default(defaultDeviceLogs.maxRows),
  // Under the 30 s that Docker (stop) and Kubernetes (terminationGracePeriodSeconds) wait before SIGKILL.
  SHUTDOWN_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(25),
});

export interface Config {
  production: boolean;
  port: number;
  host: string;
  /** TRUST_PROXY: whose X-Forwarded-For names the client (for rate limits and logs). */
  trustProxy: TrustProxy;
  /** ROLES: what this instance runs. */
  roles: ReadonlySet<Role>;
  /** DOCS_ENABLED: serve /docs and /docs/json; unset, only outside production. */
  docsEnabled: boolean;
  /** RATE_LIMIT_PER_MINUTE, RATE_LIMIT_PER_DEVICE_PER_MINUTE, RATE_LIMIT_PER_PASS_PER_MINUTE, AUTH_FAILURES_PER_MINUTE. */
  rateLimits: RateLimitSettings;
  databaseUrl: string | undefined;
  dataDir: string;
  /** The base URL devices reach; without a trailing slash. Becomes webServiceURL in every pass. */
  publicUrl: string;
  adminToken: string | undefined;
  /**
   * ALLOW_INSECURE_PRODUCTION: a staging server in production mode. A weak ADMIN_TOKEN and a WWDR certificate that
   * is not Apple's are then warnings (insecureProductionWarnings, and the identity loader's) instead of refusals.
   */
  allowInsecureProduction: boolean;
  /** What ALLOW_INSECURE_PRODUCTION let through here, for the start to log as warnings. */
  insecureProductionWarnings: string[];
  certificatesDir: string;
  /** SIGNER_CERT_PEM, SIGNER_KEY_PEM and WWDR_CERT_PEM (all three or none): used instead of CERTIFICATES_DIR. */
  signingPems: { signerCert: string; signerKey: string; wwdr: string } | undefined;
  signerKeyPassphrase: string | undefined;
  /** IDENTITY_ENCRYPTION_KEY: without it, identities cannot be added through the admin API. */
  identityEncryptionKey: Buffer | undefined;
  passTypeIdentifier: string | undefined;
  teamIdentifier: string | undefined;
  modelsDir: string;
  logLevel: string;
  /** METRICS_PORT: /metrics on its own port instead of PORT. */
  metricsPort: number | undefined;
  downloadLinkTtlSeconds: number;
  /** HTTP_*_TIMEOUT_SECONDS and HTTP_MAX_CONNECTIONS. */
  connections: ConnectionLimits;
  /** DEVICE_LOG_*: POST /v1/log's request limit and how long its messages are kept. */
  deviceLogs: DeviceLogSettings;
  /** SIGTERM / SIGINT: how long the orderly shutdown may take before the process exits with 1. */
  shutdownTimeoutSeconds: number;
  apns: ApnsConfig;
}

export interface ApnsConfig {
  origin: string;
  /** token: a .p8 key (APNS_KEY_FILE, APNS_KEY_ID); certificate: the Pass Type ID certificate that signs passes. */
  auth: 'token' | 'certificate';
  keyFile: string | undefined;
  /** The .p8 key's contents (APNS_KEY_PEM), instead of keyFile. */
  keyPem?: string | undefined;
  keyId: string | undefined;
  /** Defaults to the team identifier of the signing certificate. */
  teamId: string | undefined;
  pushType: string;
  priority: number | undefined;
  maxConcurrentStreams: number;
  maxAttempts: number;
  /** How long a worker holds claimed pushes; those of a process that died are sent again after it. */
  leaseMs: number;
}

/** A production ADMIN_TOKEN's floor: 32 characters, about 2.5 bits each (the rule is in docs/configuration.md). */
const ADMIN_TOKEN_MIN_LENGTH = 32;
const ADMIN_TOKEN_MIN_BITS_PER_CHARACTER = 2.5;

/**
 * Why a token is too weak for production, or undefined. Guessed at full speed, a token must have a lot of
 * variety: the Shannon entropy of its characters' frequencies must reach 2.5 bits per character, so a 32-character
 * token carries at least 80 bits by this estimate. Random tokens pass by far (32 hex digits: 2.8 bits or more per
 * character in 300,000 draws; base64: about 4.7), placeholders and repeats fail (`aaaa…`: 0; `abab…`: 1).
 */
export function adminTokenWeakness(token: string): string | undefined {
  const characters = [...token];
  if (characters.length < ADMIN_TOKEN_MIN_LENGTH)
    return `must be at least ${ADMIN_TOKEN_MIN_LENGTH} characters in production (has ${characters.length})`;
  const counts = new Map<string, number>();
  for (const character of characters) counts.set(character, (counts.get(character) ?? 0) + 1);
  let bitsPerCharacter = 0;
  for (const count of counts.values()) {
    const share = count / characters.length;
    bitsPerCharacter -= share * Math.log2(share);
  }
  if (bitsPerCharacter < ADMIN_TOKEN_MIN_BITS_PER_CHARACTER)
    return (
      `has too little variety (${counts.size} different characters, ${bitsPerCharacter.toFixed(1)} bits per ` +
      `character; at least ${ADMIN_TOKEN_MIN_BITS_PER_CHARACTER} needed)`
    );
  return undefined;
}

/** An AES-256 key written as 64 hex digits or 44 base64 characters; undefined when it is neither. */
function encryptionKey(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return Buffer.from(text, 'base64');
  return undefined;
}

export class ConfigError extends StartupError {
  override name = 'ConfigError';
}

export function loadConfig(environment: NodeJS.ProcessEnv = process.env): Config {
  const parsed = environmentSchema.safeParse(environment);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const env = parsed.data;
  const production = env.NODE_ENV === 'production';
  const publicUrl = (env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).replace(/\/+$/, '');
  // Apple: "Your web service must use an HTTPS connection for production"; Wallet ignores an http webServiceURL.
  if (production && !publicUrl.startsWith('https://')) {
    throw new ConfigError(
      `Invalid configuration:\n  PUBLIC_URL: must be https in production (Wallet refuses http), got ${publicUrl}`,
    );
  }
  // Certificate auth needs nothing more (Apple's Wallet documentation describes it), so it is the default.
  const apnsKey = env.APNS_KEY_FILE ?? env.APNS_KEY_PEM;
  if (env.APNS_KEY_FILE && env.APNS_KEY_PEM) {
    throw new ConfigError('Invalid configuration:\n  APNS_KEY_FILE, APNS_KEY_PEM: set one of them, not both');
  }
  const apnsAuth = env.APNS_AUTH ?? (apnsKey ? 'token' : 'certificate');
  if (apnsAuth === 'token' && !(apnsKey && env.APNS_KEY_ID)) {
    throw new ConfigError(
      'Invalid configuration:\n  APNS_KEY_FILE (or APNS_KEY_PEM), APNS_KEY_ID: both required when APNS_AUTH=token',
    );
  }
  const signingPems = {
    SIGNER_CERT_PEM: env.SIGNER_CERT_PEM,
    SIGNER_KEY_PEM: env.SIGNER_KEY_PEM,
    WWDR_CERT_PEM: env.WWDR_CERT_PEM,
  };
  const missingPems = Object.keys(signingPems).filter(
    (name) => signingPems[name as keyof typeof signingPems] === undefined,
  );
  // A partial set would silently fall back to CERTIFICATES_DIR (or a development identity): refuse it instead.
  if (missingPems.length > 0 && missingPems.length < Object.keys(signingPems).length) {
    throw new ConfigError(
      `Invalid configuration:\n  ${missingPems.join(', ')}: missing; SIGNER_CERT_PEM, SIGNER_KEY_PEM and ` +
        'WWDR_CERT_PEM are used together (or none of them, for the files in CERTIFICATES_DIR)',
    );
  }
  if (env.METRICS_PORT !== undefined && env.METRICS_PORT === env.PORT) {
    throw new ConfigError(
      'Invalid configuration:\n  METRICS_PORT: must differ from PORT (leave it unset for /metrics on PORT)',
    );
  }
  // Node refuses a headers timeout longer than the request timeout, which covers the headers too.
  if (env.HTTP_HEADERS_TIMEOUT_SECONDS > env.HTTP_REQUEST_TIMEOUT_SECONDS) {
    throw new ConfigError(
      'Invalid configuration:\n  HTTP_HEADERS_TIMEOUT_SECONDS: must not be longer than HTTP_REQUEST_TIMEOUT_SECONDS',
    );
  }
  if (production && !env.ADMIN_TOKEN) {
    throw new ConfigError('Invalid configuration:\n  ADMIN_TOKEN: required when NODE_ENV=production');
  }
  const insecureProductionWarnings: string[] = [];
  const weakness = production && env.ADMIN_TOKEN ? adminTokenWeakness(env.ADMIN_TOKEN) : undefined;
  if (weakness && !env.ALLOW_INSECURE_PRODUCTION) {
    throw new ConfigError(
      `Invalid configuration:\n  ADMIN_TOKEN: ${weakness}; NODE_ENV=production needs a random one, e.g. ` +
        '`openssl rand -hex 32` (or ALLOW_INSECURE_PRODUCTION=true for a staging server)',
    );
  }
  if (weakness) insecureProductionWarnings.push(`ADMIN_TOKEN: ${weakness}`);
  return {
    production,
    port: env.PORT,
    host: env.HOST,
    trustProxy: env.TRUST_PROXY,
    roles: env.ROLES,
    // The page is for developers; in production it is served only when asked for.
    docsEnabled: env.DOCS_ENABLED === undefined ? !production : env.DOCS_ENABLED === 'true',
    rateLimits: {
      perMinute: env.RATE_LIMIT_PER_MINUTE,
      perDevicePerMinute: env.RATE_LIMIT_PER_DEVICE_PER_MINUTE,
      perPassPerMinute: env.RATE_LIMIT_PER_PASS_PER_MINUTE,
      authFailuresPerMinute: env.AUTH_FAILURES_PER_MINUTE,
    },
    databaseUrl: env.DATABASE_URL,
    dataDir: resolve(env.DATA_DIR),
    publicUrl,
    adminToken: env.ADMIN_TOKEN,
    allowInsecureProduction: env.ALLOW_INSECURE_PRODUCTION,
    insecureProductionWarnings,
    certificatesDir: resolve(env.CERTIFICATES_DIR),
    signingPems:
      signingPems.SIGNER_CERT_PEM && signingPems.SIGNER_KEY_PEM && signingPems.WWDR_CERT_PEM
        ? {
            signerCert: signingPems.SIGNER_CERT_PEM,
            signerKey: signingPems.SIGNER_KEY_PEM,
            wwdr: signingPems.WWDR_CERT_PEM,
          }
        : undefined,
    signerKeyPassphrase: env.SIGNER_KEY_PASSPHRASE,
    identityEncryptionKey: env.IDENTITY_ENCRYPTION_KEY,
    passTypeIdentifier: env.PASS_TYPE_IDENTIFIER,
    teamIdentifier: env.TEAM_IDENTIFIER,
    modelsDir: env.MODELS_DIR ? resolve(env.MODELS_DIR) : join(projectRoot, 'models'),
    logLevel: env.LOG_LEVEL,
    metricsPort: env.METRICS_PORT,
    downloadLinkTtlSeconds: env.DOWNLOAD_LINK_TTL_SECONDS,
    shutdownTimeoutSeconds: env.SHUTDOWN_TIMEOUT_SECONDS,
    connections: {
      requestTimeoutMs: env.HTTP_REQUEST_TIMEOUT_SECONDS * 1000,
      headersTimeoutMs: env.HTTP_HEADERS_TIMEOUT_SECONDS * 1000,
      keepAliveTimeoutMs: env.HTTP_KEEP_ALIVE_TIMEOUT_SECONDS * 1000,
      idleTimeoutMs: env.HTTP_IDLE_TIMEOUT_SECONDS * 1000,
      maxConnections: env.HTTP_MAX_CONNECTIONS,
    },
    deviceLogs: {
      requestsPerMinute: env.DEVICE_LOG_REQUESTS_PER_MINUTE,
      retentionDays: env.DEVICE_LOG_RETENTION_DAYS,
      maxRows: env.DEVICE_LOG_MAX_ROWS,
    },
    apns: {
      origin: env.APNS_ORIGIN.replace(/\/+$/, ''),
      auth: apnsAuth,
      keyFile: env.APNS_KEY_FILE ? resolve(env.APNS_KEY_FILE) : undefined,
      keyPem: env.APNS_KEY_PEM,
      keyId: env.APNS_KEY_ID,
      teamId: env.APNS_TEAM_ID,
      pushType: env.APNS_PUSH_TYPE,
      priority: env.APNS_PRIORITY ? Number(env.APNS_PRIORITY) : undefined,
      maxConcurrentStreams: env.APNS_MAX_CONCURRENT_STREAMS,
      maxAttempts: env.PUSH_MAX_ATTEMPTS,
      leaseMs: env.PUSH_LEASE_SECONDS * 1000,
    },
  };
}
