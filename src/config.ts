import { resolve } from 'node:path';
import { z } from 'zod';
import { StartupError } from './errors.js';

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

const environmentSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: port.default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
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
  CERTIFICATES_DIR: z.string().min(1).default('./certificates'),
  SIGNER_KEY_PASSPHRASE: optionalText,
  PASS_TYPE_IDENTIFIER: optionalText,
  TEAM_IDENTIFIER: optionalText,
  MODELS_DIR: z.string().min(1).default('./models'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Pass update pushes work only in APNs' production environment (Apple's Wallet documentation).
  APNS_ORIGIN: z
    .url({ protocol: /^https$/, error: 'must be an https URL' })
    .default('https://api.push.apple.com'),
  APNS_AUTH: z.enum(['token', 'certificate']).optional(),
  APNS_KEY_FILE: optionalText,
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
});

export interface Config {
  production: boolean;
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  /** The base URL devices reach; without a trailing slash. Becomes webServiceURL in every pass. */
  publicUrl: string;
  adminToken: string | undefined;
  certificatesDir: string;
  signerKeyPassphrase: string | undefined;
  passTypeIdentifier: string | undefined;
  teamIdentifier: string | undefined;
  modelsDir: string;
  logLevel: string;
  downloadLinkTtlSeconds: number;
  apns: ApnsConfig;
}

export interface ApnsConfig {
  origin: string;
  /** token: a .p8 key (APNS_KEY_FILE, APNS_KEY_ID); certificate: the Pass Type ID certificate that signs passes. */
  auth: 'token' | 'certificate';
  keyFile: string | undefined;
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
  const apnsAuth = env.APNS_AUTH ?? (env.APNS_KEY_FILE ? 'token' : 'certificate');
  if (apnsAuth === 'token' && !(env.APNS_KEY_FILE && env.APNS_KEY_ID)) {
    throw new ConfigError(
      'Invalid configuration:\n  APNS_KEY_FILE, APNS_KEY_ID: both required when APNS_AUTH=token',
    );
  }
  if (production && !env.ADMIN_TOKEN) {
    throw new ConfigError('Invalid configuration:\n  ADMIN_TOKEN: required when NODE_ENV=production');
  }
  return {
    production,
    port: env.PORT,
    host: env.HOST,
    databaseUrl: env.DATABASE_URL,
    dataDir: resolve(env.DATA_DIR),
    publicUrl,
    adminToken: env.ADMIN_TOKEN,
    certificatesDir: resolve(env.CERTIFICATES_DIR),
    signerKeyPassphrase: env.SIGNER_KEY_PASSPHRASE,
    passTypeIdentifier: env.PASS_TYPE_IDENTIFIER,
    teamIdentifier: env.TEAM_IDENTIFIER,
    modelsDir: resolve(env.MODELS_DIR),
    logLevel: env.LOG_LEVEL,
    downloadLinkTtlSeconds: env.DOWNLOAD_LINK_TTL_SECONDS,
    apns: {
      origin: env.APNS_ORIGIN.replace(/\/+$/, ''),
      auth: apnsAuth,
      keyFile: env.APNS_KEY_FILE ? resolve(env.APNS_KEY_FILE) : undefined,
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
