/*
 * Keeps POST /v1/log's messages bounded (the route takes no credentials): messages older than DEVICE_LOG_RETENTION_DAYS
 * are deleted, and so are the oldest beyond DEVICE_LOG_MAX_ROWS. It runs in the workers role (src/server.ts), apart
 * from the requests, every minute and at start: the rules are read from the table itself, so a restart forgets
 * nothing, and instances that run it at the same time share the rows to delete (src/db/device-logs.ts). Between two
 * runs the table may pass the cap by what arrived meanwhile, which the route's request limit bounds per address.
 */
import type { Clock } from '../clock.js';
import type { DeviceLogSettings } from '../config.js';
import type { DeviceLogsRepository } from '../db/device-logs.js';
import type { Logger } from '../logger.js';

export interface DeviceLogRetentionOptions {
  deviceLogs: Pick<DeviceLogsRepository, 'deleteOlderThan' | 'deleteAllButNewest'>;
  settings: Pick<DeviceLogSettings, 'retentionDays' | 'maxRows'>;
  clock: Clock;
  log: Logger;
  /** How often to delete what is due. */
  intervalMs?: number;
  /** Messages deleted per statement at most: each statement stays short, whatever there is to delete. */
  batchSize?: number;
}

export interface DeletedDeviceLogs {
  /** Older than the retention period. */
  expired: number;
  /** The oldest beyond the cap. */
  beyondCap: number;
}

const dayMs = 24 * 3600 * 1000;

/**
 * Deletes what is due now, statement by statement, until a statement finds less than a batch (nothing more is due)
 * or `stopping()` says to end.
 */
export async function deleteDueDeviceLogs(
  options: Pick<DeviceLogRetentionOptions, 'deviceLogs' | 'settings' | 'clock' | 'batchSize'>,
  stopping: () => boolean = () => false,
): Promise<DeletedDeviceLogs> {
  const { deviceLogs, settings } = options;
  const batchSize = options.batchSize ?? 10_000;
  const inBatches = async (deleteBatch: () => Promise<number>) => {
    let total = 0;
    for (;;) {
      const deleted = await deleteBatch();
      total += deleted;
      if (deleted < batchSize || stopping()) return total;
    }
  };
  const cutoff = new Date(options.clock.now().getTime() - settings.retentionDays * dayMs);
  const expired = await inBatches(() => deviceLogs.deleteOlderThan(cutoff, batchSize));
  const beyondCap = await inBatches(() => deviceLogs.deleteAllButNewest(settings.maxRows, batchSize));
  return { expired, beyondCap };
}

export interface DeviceLogRetention {
  /** SIGTERM: no new run; a run in progress ends after its current statement. */
  stop(): Promise<void>;
}

/** Runs deleteDueDeviceLogs at once, then every `intervalMs` (a minute by default), until stop(). */
export function startDeviceLogRetention(options: DeviceLogRetentionOptions): DeviceLogRetention {
  const { log } = options;
  const intervalMs = options.intervalMs ?? 60_000;
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const run = async () => {
    try {
      const deleted = await deleteDueDeviceLogs(options, () => stopping);
      if (deleted.expired + deleted.beyondCap > 0) log.info(deleted, 'device logs deleted');
    } catch (error) {
      // The database may be away for a while: the next run tries again.
      log.error({ err: error }, 'device log retention failed');
    }
  };

  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      running = run().finally(() => {
        running = undefined;
        if (!stopping) schedule(intervalMs);
      });
    }, delayMs);
  };
  schedule(0);

  return {
    async stop() {
      stopping = true;
      clearTimeout(timer);
      await running;
    },
  };
}
