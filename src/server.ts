/*
 * Process entry: config → configured signing identity → templates → database (migrations applied) → stored
 * identities → push worker → app → listen. SIGTERM / SIGINT close the HTTP server (in-flight requests finish), then the push worker (sends in
 * flight finish, claimed rows are given back), then the database.
 */
import { resolveAdminToken } from './admin/admin-token.js';
import { buildApp } from './app.js';
import { systemClock } from './clock.js';
import { type Config, loadConfig } from './config.js';
import { openDatabase } from './db/database.js';
import { migrationStatus } from './db/migrations.js';
import { StartupError } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics } from './ops/metrics.js';
import { startMetricsServer } from './ops/metrics-server.js';
import { startBulkRunner } from './passes/bulk.js';
import { createBundleCache } from './passes/bundle-cache.js';
import { createTemplateCatalog } from './passes/template-catalog.js';
import { loadTemplates, type Template } from './passes/templates.js';
import { startPushes } from './push/pushes.js';
import { templateProblem } from './signing/bundle.js';
import { createIdentities } from './signing/identities.js';
import { loadIdentityFolders, loadSigningIdentity, type SigningIdentity } from './signing/identity.js';
import { createSigner } from './signing/signer.js';
import { startDeviceLogRetention } from './wallet/device-log-retention.js';

/** Templates that cannot be read, or that Wallet would refuse, are reported at start with their path. */
async function loadTemplatesReportingProblems(config: Config, identity: SigningIdentity, log: Logger) {
  const { templates, problems } = await loadTemplates(config.modelsDir);
  for (const problem of problems)
    log.error({ path: problem.path }, `template not loaded: ${problem.message}`);
  for (const template of templates.values()) {
    const problem = templateProblem(template, identity);
    if (problem !== undefined)
      log.error(
        { path: template.dir },
        `template "${template.name}" makes passes Wallet refuses: ${problem}`,
      );
  }
  if (templates.size === 0)
    log.warn({ modelsDir: config.modelsDir }, 'no templates: passes cannot be created');
  return templates;
}

/** What a developer sees after the first `npm start`: the admin token and a request that creates a pass. */
function welcome(config: Config, adminToken: string, templates: ReadonlyMap<string, Template>): string {
  const loyalty = templates.get('loyalty');
  const example = loyalty?.fieldKeys.includes('points')
    ? { template: 'loyalty', fields: { points: 120 } }
    : { template: [...templates.keys()][0] ?? 'loyalty' };
  const body = JSON.stringify(example);
  return [
    '',
    `Pass server listening on ${config.publicUrl}`,
    `Admin token (kept in ${config.dataDir}/admin-token; set ADMIN_TOKEN to choose your own):`,
    `  ${adminToken}`,
    'Create a pass:',
    `  curl -s -X POST ${config.publicUrl}/admin/passes -H 'Authorization: Bearer ${adminToken}' \\`,
    `    -H 'Content-Type: application/json' -d '${body}'`,
    'then open its downloadUrl. Templates and their field keys: GET /admin/templates',
    '',
  ].join('\n');
}

async function main() {
  const config = loadConfig();
  const log = createLogger({ level: config.logLevel });
  // A staging server in production mode: said at every start, with what it let through (the identity adds its own).
  if (config.production && config.allowInsecureProduction) {
    log.warn(
      { allowed: config.insecureProductionWarnings },
      'ALLOW_INSECURE_PRODUCTION=true: production checks of ADMIN_TOKEN and the WWDR certificate only warn; not for a public server',
    );
  }
  const identityOptions = {
    certificatesDir: config.certificatesDir,
    pems: config.signingPems,
    dataDir: config.dataDir,
    signerKeyPassphrase: config.signerKeyPassphrase,
    passTypeIdentifier: config.passTypeIdentifier,
    teamIdentifier: config.teamIdentifier,
    production: config.production,
    allowInsecureProduction: config.allowInsecureProduction,
    log,
  };
  const identity = await loadSigningIdentity(identityOptions);
  // One more per subfolder of CERTIFICATES_DIR (several brands from files).
  const folderIdentities = await loadIdentityFolders(identityOptions);
  const templates = await loadTemplatesReportingProblems(config, identity, log);
  // One pool of signing threads for the app and the bulk runner; its threads start with the first pass.
  const signer = createSigner();
  const admin = resolveAdminToken(config.adminToken, config.dataDir);
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, log });
  // The configured identity and those added through the admin API (stored with their keys sealed).
  const identities = createIdentities({
    configured: [identity, ...folderIdentities],
    repository: database.repositories.identities,
    encryptionKey: config.identityEncryptionKey,
    production: config.production,
    allowInsecureProduction: config.allowInsecureProduction,
    clock: systemClock,
    log,
  });
  await identities.load();
  const templateCatalog = createTemplateCatalog({
    files: templates,
    repository: database.repositories.templates,
    identifiers: () => identities.primary().signing,
    clock: systemClock,
  });
  // Made before the push worker, which reports each send to them; the app (or METRICS_PORT) serves them.
  const metrics = createMetrics({
    repositories: database.repositories,
    clock: systemClock,
    log,
    passChanges: database.passChanges,
    identities,
  });
  // The workers (ROLES=workers): pushes from the outbox, bulk changes and device log retention (below). Instances
  // without them leave the outbox, the queued jobs and old device logs to those that run them.
  const runsWorkers = config.roles.has('workers');
  const pushes = !runsWorkers
    ? undefined
    : startPushes({
        config: config.apns,
        identities,
        repositories: database.repositories,
        clock: systemClock,
        log,
        onOutcome: (outcome) => metrics.observePush(outcome),
        // Sends in flight get at most 10 s, and never so long that the rows cannot be given back before the
        // shutdown deadline (rows not given back wait out their lease instead).
        stopTimeoutMs: Math.min(10_000, Math.max(500, (config.shutdownTimeoutSeconds * 1000) / 2)),
      });
  // In production TLS ends at a proxy (PUBLIC_URL is https, this server speaks http): without TRUST_PROXY every
  // client has the proxy's address, so all of them share one rate limit and one failed-authentication count.
  if (config.production && config.trustProxy === false) {
    log.warn('TRUST_PROXY is unset: behind a proxy, all clients share its address for rate limits and logs');
  }
  const app = await buildApp({
    database,
    repositories: database.repositories,
    templates: templateCatalog,
    identities,
    signer,
    clock: systemClock,
    // Bundles of recent versions in memory (64 MB, least recently used out): keyed by version, so the current
    // version (src/wallet/known-passes.ts) decides, and another instance's change is never served stale.
    bundleCache: createBundleCache(),
    webServiceURL: config.publicUrl,
    log,
    adminToken: admin.token,
    publicUrl: config.publicUrl,
    downloadLinkTtlSeconds: config.downloadLinkTtlSeconds,
    trustProxy: config.trustProxy,
    rateLimits: config.rateLimits,
    deviceLogRequestsPerMinute: config.deviceLogs.requestsPerMinute,
    connections: config.connections,
    roles: config.roles,
    docsEnabled: config.docsEnabled,
    ...(pushes ? { afterChange: () => pushes.worker.wake() } : {}),
    // `bulk` is started below, before listen(): no request can call this earlier.
    ...(runsWorkers ? { wakeBulkRunner: () => bulk?.wake() } : {}),
    ops: {
      metrics,
      metricsOnMainPort: config.metricsPort === undefined,
      checkMigrations: () => migrationStatus(database.adapterFactory),
      pushWorker: pushes?.worker,
    },
  });
  // Bulk changes (POST /admin/passes/bulk): claims queued jobs, and resumes those a stopped instance left running.
  const bulk = !runsWorkers
    ? undefined
    : startBulkRunner({
        deps: {
          repositories: database.repositories,
          templates: templateCatalog,
          identities,
          signer,
          clock: systemClock,
          webServiceURL: config.publicUrl,
          ...(pushes ? { afterChange: () => pushes.worker.wake() } : {}),
          observeSigning: (seconds) => metrics.observeSigning(seconds),
        },
        log,
      });
  // POST /v1/log's messages: deleted past their retention period and beyond the cap, in the background.
  const deviceLogRetention = !runsWorkers
    ? undefined
    : startDeviceLogRetention({
        deviceLogs: database.repositories.deviceLogs,
        settings: config.deviceLogs,
        clock: systemClock,
        log,
      });
  await app.listen({ port: config.port, host: config.host });
  const metricsServer =
    config.metricsPort === undefined
      ? undefined
      : await startMetricsServer({
          metrics,
          port: config.metricsPort,
          host: config.host,
          log,
          connections: config.connections,
        });
  log.info(
    {
      database: database.kind,
      passTypeIdentifiers: identities.list().map((each) => each.signing.passTypeIdentifier),
      templates: [...templates.keys()],
    },
    'pass server ready',
  );
  // Printed, not logged: the generated development token is for the developer's eyes, not for log storage.
  if (admin.generated) process.stdout.write(welcome(config, admin.token, templates));

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    const timeoutSeconds = config.shutdownTimeoutSeconds;
    log.info({ signal, timeoutSeconds }, 'shutting down');
    // Exit before the orchestrator's SIGKILL, saying why. Nothing is lost: pushes still claimed become due
    // again when their lease runs out, and a request not yet answered was not acknowledged to anyone.
    const deadline = setTimeout(() => {
      log.error({ timeoutSeconds }, 'shutdown not finished within SHUTDOWN_TIMEOUT_SECONDS; exiting');
      process.exit(1);
    }, timeoutSeconds * 1000);
    try {
      // In order: no new requests, answered ones done (their changes and outbox rows committed); then no new
      // claims, sends finished or given back; then the database they all used.
      await app.close();
      // Its current page commits (cursor and counts) before the signer's threads go; the job resumes elsewhere.
      await bulk?.stop();
      await deviceLogRetention?.stop();
      await signer.close();
      await pushes?.close();
      identities.close();
      await metricsServer?.close();
      await database.close();
    } catch (error) {
      log.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
    clearTimeout(deadline);
    log.info('shut down');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  if (error instanceof StartupError) {
    process.stderr.write(`Cannot start: ${error.message}\n`);
  } else {
    process.stderr.write(
      `Cannot start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
  }
  process.exit(1);
});
