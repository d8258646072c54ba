import { setTimeout as sleep } from 'node:timers/promises';
import type { Conformance } from './simulate-checks.js';
import { describeAnswer, readPassJson, readSerialNumbers } from './simulate-device.js';

/*
 * `simulate --watch`: after the conformance run, the simulated device registers again and keeps asking for
 * updates the way Wallet does after a push (it cannot receive pushes, so it polls): list with its lastUpdated tag,
 * fetch each listed pass with If-Modified-Since, and report what changed in pass.json.
 */

export interface WatchOptions {
  intervalMs: number;
  /** Stop after this long; without it, on Ctrl-C only. */
  durationMs?: number;
  json: boolean;
  write: (text: string) => void;
}

export interface PassJsonChange {
  path: string;
  from?: string;
  to?: string;
}

export async function watchPass(run: Conformance, options: WatchOptions): Promise<void> {
  const stop = stopSignal(options.durationMs);
  const { device } = run;
  const registered = await device.register();
  report(options, 'watching', {
    registration: describeAnswer(registered),
    intervalSeconds: options.intervalMs / 1000,
  });
  try {
    while (!stop.signal.aborted) {
      await sleep(options.intervalMs, undefined, { signal: stop.signal }).catch(() => undefined);
      if (!stop.signal.aborted) await poll(run, options);
    }
  } finally {
    stop.dispose();
    const unregistered = await device.unregister();
    report(options, 'stopped', { unregistration: describeAnswer(unregistered) });
  }
}

/** Aborts on Ctrl-C (SIGINT) or when the duration has passed. */
function stopSignal(durationMs: number | undefined) {
  const controller = new AbortController();
  const abort = () => controller.abort();
  process.once('SIGINT', abort);
  const timer = durationMs === undefined ? undefined : setTimeout(abort, durationMs);
  return {
    signal: controller.signal,
    dispose: () => {
      process.removeListener('SIGINT', abort);
      clearTimeout(timer);
    },
  };
}

/** One round of what Wallet does after a push. */
async function poll(run: Conformance, options: WatchOptions): Promise<void> {
  const answer = await run.device.list(run.tag, run.listNeedsToken);
  if (answer.status === 204) return;
  const body = answer.status === 200 ? readSerialNumbers(answer) : `the list ${describeAnswer(answer)}`;
  if (typeof body === 'string') {
    report(options, 'problem', { problem: body });
    return;
  }
  if (body.lastUpdated !== undefined && body.lastUpdated !== null) run.tag = String(body.lastUpdated);
  if (body.serialNumbers.includes(run.device.pass.serialNumber)) await fetchNewVersion(run, options);
}

async function fetchNewVersion(run: Conformance, options: WatchOptions): Promise<void> {
  const answer = await run.device.fetchPass(run.lastModified);
  if (answer.status === 304) {
    report(options, 'unchanged', {
      detail: 'listed, but the fetch answered 304: the held version is current',
    });
    return;
  }
  if (answer.status !== 200) {
    report(options, 'problem', { problem: `the pass ${describeAnswer(answer)}` });
    return;
  }
  let passJson: Record<string, unknown>;
  try {
    passJson = readPassJson(answer.body);
  } catch (error) {
    report(options, 'problem', {
      problem: `the new version: ${error instanceof Error ? error.message : error}`,
    });
    return;
  }
  const changes = diffPassJson(run.passJson, passJson);
  run.passJson = passJson;
  run.lastModified = answer.headers.get('last-modified') ?? undefined;
  report(options, 'version', {
    serialNumber: run.device.pass.serialNumber,
    lastModified: run.lastModified ?? null,
    changes,
  });
}

/** Leaf values of pass.json by path; fields (objects with a `key`) are named by their key, not their index. */
export function flattenPassJson(
  value: unknown,
  path = '',
  into = new Map<string, string>(),
): Map<string, string> {
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      flattenPassJson(item, `${path}[${fieldKey(item) ?? index}]`, into);
    });
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value))
      flattenPassJson(item, path ? `${path}.${key}` : key, into);
  } else {
    into.set(path, JSON.stringify(value));
  }
  return into;
}

function fieldKey(item: unknown): string | undefined {
  if (typeof item !== 'object' || item === null || !('key' in item)) return undefined;
  return typeof item.key === 'string' ? item.key : undefined;
}

export function diffPassJson(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): PassJsonChange[] {
  const old = flattenPassJson(before);
  const now = flattenPassJson(after);
  const paths = new Set([...old.keys(), ...now.keys()]);
  const changes: PassJsonChange[] = [];
  for (const path of paths) {
    const from = old.get(path);
    const to = now.get(path);
    if (from !== to)
      changes.push({ path, ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) });
  }
  return changes;
}

type EventName = 'watching' | 'version' | 'unchanged' | 'problem' | 'stopped';

function report(options: WatchOptions, event: EventName, data: Record<string, unknown>): void {
  const time = new Date().toISOString();
  if (options.json) {
    options.write(`${JSON.stringify({ event, time, ...data })}\n`);
    return;
  }
  options.write(`${[`[${time}] ${headline(event, data)}`, ...changeLines(data.changes)].join('\n')}\n`);
}

function headline(event: EventName, data: Record<string, unknown>): string {
  switch (event) {
    case 'watching':
      return `watching: registered again (${data.registration}); polling every ${data.intervalSeconds} s, Ctrl-C stops`;
    case 'version':
      return `new version of ${data.serialNumber}, Last-Modified: ${data.lastModified ?? 'none'}`;
    case 'unchanged':
      return String(data.detail);
    case 'problem':
      return `problem: ${data.problem}`;
    case 'stopped':
      return `stopped; unregistered (${data.unregistration})`;
  }
}

function changeLines(changes: unknown): string[] {
  if (!Array.isArray(changes)) return [];
  if (changes.length === 0) return ['  (pass.json is unchanged; other files of the bundle may have changed)'];
  return (changes as PassJsonChange[]).map(
    (change) => `  ${change.path}: ${change.from ?? '(none)'} → ${change.to ?? '(none)'}`,
  );
}
