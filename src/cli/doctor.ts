import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { type Config, ConfigError, loadConfig } from '../config.js';
import { type Database, openDatabase } from '../db/database.js';
import { migrationStatus } from '../db/migrations.js';
import { loadTemplates, type Template } from '../passes/templates.js';
import { bareContent, buildSignedBundle } from '../signing/bundle.js';
import { openStoredIdentity } from '../signing/identities.js';
import type { SigningIdentity } from '../signing/identity.js';
import { checkValidity } from './certificate-rules.js';
import { checkApns } from './doctor-apns.js';
import { checkIdentity, checkIdentityFolders } from './doctor-identity.js';
import { exitCode, type Finding, fail, pass, renderFindings, warn } from './findings.js';
import { validatePkpass } from './validate.js';

/*
 * `doctor [--json] [--external]`: is this deployment ready? Reads the server's configuration (loadConfig, the
 * same variables) and checks what Wallet and APNs will check, each finding with its fix.
 */

export interface DoctorOptions {
  /** Also GET {PUBLIC_URL}/v1/devices/… from here, as a device would. */
  external?: boolean;
  /** An extra CA to trust for APNS_ORIGIN (tests: the mock APNs); NODE_EXTRA_CA_CERTS works too. */
  apnsCa?: string;
  now?: Date;
}

export const DOCTOR_RULES = {
  config: 'config',
  templates: 'templates',
  https: 'public-url/https',
  external: 'public-url/answers',
  database: 'database/reachable',
  migrations: 'database/migrations',
  storedIdentities: 'identities/stored',
} as const;
const R = DOCTOR_RULES;
const TIMEOUT_MS = 10_000;
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

export async function runDoctor(env: NodeJS.ProcessEnv, options: DoctorOptions = {}): Promise<Finding[]> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return [
      fail(
        R.config,
        error.message,
        'Fix the variables named above (see .env.example and the README).',
        'The server does not start with this configuration.',
      ),
    ];
  }
  const now = options.now ?? new Date();
  const findings: Finding[] = [
    pass(R.config, `configuration is valid (${config.production ? 'production' : 'not production'})`),
  ];
  const { findings: identityFindings, identity } = await checkIdentity(config, now);
  findings.push(...identityFindings, ...(await checkIdentityFolders(config, now)));
  findings.push(...(await checkTemplates(config, identity, now)));
  findings.push(...(await checkPublicUrl(config, identity, options.external === true)));
  findings.push(...(await checkDatabase(config, now)));
  findings.push(...(await checkApns(config, identity, { ca: options.apnsCa })));
  return findings;
}

// ---------- templates ----------

async function checkTemplates(
  config: Config,
  identity: SigningIdentity | undefined,
  now: Date,
): Promise<Finding[]> {
  const { templates, problems } = await loadTemplates(config.modelsDir);
  const findings = problems.map((problem) =>
    fail(
      `${R.templates}`,
      `${problem.path}: ${problem.message}`,
      'Fix the template folder (see models/README.md).',
      'The server skips a template it cannot read: passes cannot be created from it.',
    ),
  );
  if (templates.size === 0) {
    findings.push(
      fail(
        R.templates,
        `no templates in MODELS_DIR (${config.modelsDir})`,
        'Add <name>.pass folders (see models/README.md).',
        'Passes are created from templates.',
      ),
    );
    return findings;
  }
  if (identity === undefined) {
    findings.push(
      fail(
        R.templates,
        'not signed: no usable signing identity',
        'Fix the signing identity (above).',
        'Every pass is signed.',
      ),
    );
    return findings;
  }
  for (const template of templates.values())
    findings.push(await checkTemplate(template, config, identity, now));
  return findings;
}

/** Renders the template with placeholder values, signs it, and validates the .pkpass like any other. */
async function checkTemplate(
  template: Template,
  config: Config,
  identity: SigningIdentity,
  now: Date,
): Promise<Finding> {
  const rule = `${R.templates}/${template.name}`;
  const fix = `Fix ${template.dir}/pass.json (see models/README.md).`;
  const why = 'Passes made from this template would be refused by Wallet.';
  let bundle: Buffer;
  try {
    const content = bareContent(template, {
      serialNumber: 'doctor-check',
      authenticationToken: randomBytes(24).toString('base64url'),
      webServiceURL: config.publicUrl,
    });
    bundle = buildSignedBundle(content, identity);
  } catch (error) {
    return fail(rule, `cannot be signed: ${(error as Error).message}`, fix, why);
  }
  const failed = validatePkpass(bundle, { wwdrPem: identity.wwdr, now }).filter(
    (finding) => finding.status === 'fail',
  );
  if (failed.length === 0) return pass(rule, 'renders, signs and passes validate');
  return fail(
    rule,
    `validate fails: ${failed.map((finding) => `${finding.rule} (${finding.detail})`).join('; ')}`,
    fix,
    why,
  );
}

// ---------- PUBLIC_URL ----------

async function checkPublicUrl(
  config: Config,
  identity: SigningIdentity | undefined,
  external: boolean,
): Promise<Finding[]> {
  const url = new URL(config.publicUrl);
  const why =
    'Apple: the web service must use HTTPS; Wallet on a device ignores an http webServiceURL, so passes never register or update.';
  const fix = 'Set PUBLIC_URL=https://… (a TLS-terminating reverse proxy in front of the server).';
  const findings = [
    url.protocol === 'https:'
      ? pass(R.https, `PUBLIC_URL is https (${config.publicUrl})`)
      : LOCAL_HOSTS.has(url.hostname) && !config.production
        ? warn(
            R.https,
            `PUBLIC_URL is ${config.publicUrl}: only the simulator and local tests can reach it`,
            fix,
            why,
          )
        : fail(R.https, `PUBLIC_URL is ${config.publicUrl}, not https`, fix, why),
  ];
  if (external) findings.push(await checkAnswers(config, identity));
  return findings;
}

/** Wallet's "list updatable passes" call: no Authorization, an unknown device → 204. */
async function checkAnswers(config: Config, identity: SigningIdentity | undefined): Promise<Finding> {
  const passTypeIdentifier = identity?.passTypeIdentifier ?? config.passTypeIdentifier ?? 'pass.example';
  const target = `${config.publicUrl}/v1/devices/${randomBytes(16).toString('hex')}/registrations/${passTypeIdentifier}`;
  const why =
    'Wallet calls this endpoint after every push, without Authorization; any other answer and the pass never updates.';
  try {
    const response = await fetch(target, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    await response.arrayBuffer();
    if (response.status === 204) return pass(R.external, `GET ${target} answered 204`);
    return fail(
      R.external,
      `GET ${target} answered ${response.status}, expected 204 for an unknown device`,
      response.status === 401
        ? 'The list endpoint must not require Authorization (Wallet sends none); check the proxy in front of the server.'
        : 'Make PUBLIC_URL route /v1/ to this server (check the proxy paths).',
      why,
    );
  } catch (error) {
    return fail(
      R.external,
      `GET ${target} failed: ${describeFetchError(error)}`,
      'Make PUBLIC_URL reachable from the internet (DNS, firewall, TLS certificate of the proxy).',
      why,
    );
  }
}

function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

// ---------- database ----------

async function checkDatabase(config: Config, now: Date): Promise<Finding[]> {
  const where =
    config.databaseUrl === undefined
      ? `embedded (${join(config.dataDir, 'pglite')})`
      : 'PostgreSQL (DATABASE_URL)';
  if (config.databaseUrl === undefined && !existsSync(join(config.dataDir, 'pglite'))) {
    return [
      warn(
        R.database,
        `${where} does not exist yet`,
        'Start the server once (it creates the database and applies the migrations), or set DATABASE_URL.',
        'Registrations and pass versions live in the database.',
      ),
    ];
  }
  let database: Database | undefined;
  try {
    database = await withTimeout(
      openDatabase({
        databaseUrl: config.databaseUrl,
        dataDir: config.dataDir,
        log: pino({ level: 'silent' }),
        migrate: false,
      }),
    );
    await withTimeout(database.repositories.health.ping());
    const reachable = pass(R.database, `${where} answers`);
    const migrations = await checkMigrations(database);
    // Identities are read only from a current schema (an older database has no table of them).
    const stored = migrations.status === 'fail' ? [] : await checkStoredIdentities(database, config, now);
    return [reachable, migrations, ...stored];
  } catch (error) {
    return [
      fail(
        R.database,
        `${where} does not answer: ${(error as Error).message}`,
        'Check DATABASE_URL (host, port, user, password, database) and that PostgreSQL accepts connections from here.',
        'Nothing works without the database; /readyz answers 503.',
      ),
    ];
  } finally {
    await database?.close().catch(() => undefined);
  }
}

/** Each identity added through the admin API: its keys open with IDENTITY_ENCRYPTION_KEY, its certificate's expiry. */
async function checkStoredIdentities(database: Database, config: Config, now: Date): Promise<Finding[]> {
  const records = await withTimeout(database.repositories.identities.list()).catch(() => []);
  return records.map((record) => {
    const rule = `${R.storedIdentities}/${record.passTypeIdentifier}`;
    try {
      openStoredIdentity(record, config.identityEncryptionKey);
    } catch (error) {
      return fail(
        rule,
        (error as Error).message,
        'Set IDENTITY_ENCRYPTION_KEY to the key the identity was added with, or add it again (PUT /admin/identities/…).',
        'The server refuses to start with a stored identity it cannot open.',
      );
    }
    const what = `the certificate of ${record.passTypeIdentifier} (added through the API)`;
    const validity = checkValidity(new X509Certificate(record.signerCert), what, rule, now);
    return validity.status !== 'pass'
      ? {
          ...validity,
          fix: `Rotate it: PUT /admin/identities/${record.passTypeIdentifier} with a new certificate.`,
        }
      : validity;
  });
}

async function checkMigrations(database: Database): Promise<Finding> {
  const status = await withTimeout(migrationStatus(database.adapterFactory));
  const broken = [
    ...status.failed.map((name) => `${name} failed`),
    ...status.edited.map((name) => `${name} was edited after it was applied`),
  ];
  if (broken.length > 0) {
    return fail(
      R.migrations,
      broken.join('; '),
      'Restore the committed migration files and resolve failed migrations (npm run db:migrate:status).',
      'The server refuses to start when the migration history is inconsistent.',
    );
  }
  if (status.pending.length > 0) {
    return warn(
      R.migrations,
      `pending: ${status.pending.join(', ')}`,
      'Run npm run db:migrate, or start the server (it applies them).',
      'Code that expects the new schema fails until they are applied.',
    );
  }
  return pass(
    R.migrations,
    `migrations are current${status.unknown.length > 0 ? ` (the database also has ${status.unknown.join(', ')}, from a newer version)` : ''}`,
  );
}

function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------- command ----------

/** `doctor [--json] [--external]`: prints the findings; 0 when none failed. */
export async function runDoctorCommand(args: string[]): Promise<number> {
  const unknown = args.filter((arg) => arg !== '--json' && arg !== '--external');
  if (unknown.length > 0) {
    process.stderr.write('usage: passkit-server doctor [--json] [--external]\n');
    return 2;
  }
  const findings = await runDoctor(process.env, { external: args.includes('--external') });
  process.stdout.write(renderFindings('doctor', findings, { json: args.includes('--json') }));
  return exitCode(findings);
}
