/*
 * Readiness: whether this instance should get traffic. Each part is checked on every probe except the migrations,
 * whose check runs Prisma's schema engine (WebAssembly): once it has found nothing pending or failed, that answer
 * is kept, since migrations are applied at start and never undone by a running server.
 */
import type { Clock } from '../clock.js';
import type { HealthRepository } from '../db/health.js';
import type { MigrationStatus } from '../db/migrations.js';
import type { Logger } from '../logger.js';
import type { SigningIdentity } from '../signing/identity.js';

export type ReadinessPart = 'database' | 'migrations' | 'signingIdentity' | 'pushWorker';

export interface ReadinessOptions {
  health: Pick<HealthRepository, 'ping'>;
  identity: SigningIdentity | undefined;
  clock: Clock;
  log: Logger;
  /** migrationStatus() on this database. Without it the migrations are unconfirmed, so not ready. */
  checkMigrations?: (() => Promise<MigrationStatus>) | undefined;
  /** This instance's push worker. Without one, changes would never reach devices, so not ready. */
  pushWorker?: { readonly running: boolean } | undefined;
  /** False on an instance whose ROLES leave out `workers`: its readiness does not depend on a push worker. */
  runsPushWorker?: boolean;
  /** A probe does not wait longer than this for the database (a dropped network hangs rather than fails). */
  databaseTimeoutMs?: number;
  /** How long a migration check may take before the probe gives up on it (it keeps running for the next). */
  migrationTimeoutMs?: number;
  /** After a migration check that found a problem or failed, the next one waits this long (it is costly). */
  migrationRecheckMs?: number;
}

export interface ReadinessReport {
  ready: boolean;
  failing: ReadinessPart[];
}

export interface Readiness {
  check(): Promise<ReadinessReport>;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function createReadiness(options: ReadinessOptions): Readiness {
  const databaseTimeoutMs = options.databaseTimeoutMs ?? 2_000;
  const migrationTimeoutMs = options.migrationTimeoutMs ?? 30_000;
  const migrationRecheckMs = options.migrationRecheckMs ?? 10_000;
  const log = options.log.child({ component: 'readiness' });

  let migrationsConfirmed = false;
  let migrationCheck: Promise<boolean> | undefined;
  let lastMigrationProblemAt: number | undefined;
  let lastFailing: string | undefined;

  async function databaseAnswers(): Promise<boolean> {
    try {
      await withTimeout(options.health.ping(), databaseTimeoutMs, 'database');
      return true;
    } catch (error) {
      log.debug({ err: error }, 'readiness: the database does not answer');
      return false;
    }
  }

  async function runMigrationCheck(check: () => Promise<MigrationStatus>): Promise<boolean> {
    try {
      const status = await check();
      if (status.pending.length === 0 && status.failed.length === 0) {
        migrationsConfirmed = true;
        return true;
      }
      log.warn({ pending: status.pending, failed: status.failed }, 'readiness: migrations not applied');
    } catch (error) {
      log.warn({ err: error }, 'readiness: the migration check failed');
    }
    lastMigrationProblemAt = Date.now();
    return false;
  }

  async function migrationsApplied(): Promise<boolean> {
    if (migrationsConfirmed) return true;
    const check = options.checkMigrations;
    if (!check) return false;
    if (
      migrationCheck === undefined &&
      lastMigrationProblemAt !== undefined &&
      Date.now() - lastMigrationProblemAt < migrationRecheckMs
    )
      return false;
    // Probes that arrive while the engine runs share its one run.
    migrationCheck ??= runMigrationCheck(check).finally(() => {
      migrationCheck = undefined;
    });
    try {
      return await withTimeout(migrationCheck, migrationTimeoutMs, 'migration check');
    } catch {
      return false;
    }
  }

  function signingIdentityLoaded(): boolean {
    // Loaded, not necessarily valid: once its certificate has expired the instance still serves every pass from
    // its last signed bundle (only creating and changing passes is refused), which is worth keeping in service.
    return options.identity !== undefined;
  }

  return {
    async check() {
      const failing: ReadinessPart[] = [];
      const database = await databaseAnswers();
      if (!database) failing.push('database');
      // The schema engine needs the database; while it is down the migrations stay unconfirmed.
      if (!(database ? await migrationsApplied() : migrationsConfirmed)) failing.push('migrations');
      if (!signingIdentityLoaded()) failing.push('signingIdentity');
      if ((options.runsPushWorker ?? true) && !options.pushWorker?.running) failing.push('pushWorker');
      // Logged on changes only: load balancers probe every few seconds.
      const now = failing.join(',');
      if (now !== lastFailing) {
        if (failing.length > 0) log.warn({ failing }, 'not ready');
        else log.info('ready');
        lastFailing = now;
      }
      return { ready: failing.length === 0, failing };
    },
  };
}
