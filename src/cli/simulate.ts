import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { exitCode, renderFindings } from './findings.js';
import { runConformance } from './simulate-checks.js';
import { networkError, type PassUnderTest, passUnderTest, readPassJson } from './simulate-device.js';
import { watchPass } from './simulate-watch.js';

/*
 * `simulate`: plays an iPhone against any PassKit web service (ours or another implementation) and prints a
 * conformance table: Apple's rule, what the server did, ✓/✗. The pass comes from a .pkpass file, or is created
 * through our admin API (which also lets it check what a change does: new tag, later Last-Modified).
 */

export const simulateUsage = `Usage:
  simulate <file.pkpass> [options]
  simulate --server <url> --admin-token <token> [--template <name>] [--keep] [options]

Plays an iPhone's Wallet against the web service at the pass's webServiceURL: register, list updatable
passes, fetch with and without If-Modified-Since, wrong tokens, unregister, log. Exits 1 when a rule fails,
2 when it cannot run.

Options:
  --server <url>         create a pass through this passkit-server's admin API (POST /admin/passes), and
                         also check what a change (PATCH) does
  --admin-token <token>  the admin token (ADMIN_TOKEN) for --server
  --template <name>      template of the created pass (default: the server's first template)
  --keep                 keep the created pass (it is deleted at the end otherwise)
  --json                 print the findings as JSON (watch events as JSON lines)
  --watch                afterwards, keep polling like a device and report each new version
  --interval <seconds>   seconds between polls with --watch (default 5)
  --duration <seconds>   stop watching after this long (default: on Ctrl-C)
  -h, --help             show this help
`;

export interface SimulateOptions {
  file?: string;
  server?: string;
  adminToken?: string;
  template?: string;
  keep: boolean;
  json: boolean;
  watch: boolean;
  intervalMs: number;
  durationMs?: number;
  help: boolean;
}

class UsageError extends Error {}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function parseSimulateArgs(args: string[]): SimulateOptions {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      server: { type: 'string' },
      'admin-token': { type: 'string' },
      template: { type: 'string' },
      keep: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      watch: { type: 'boolean', default: false },
      interval: { type: 'string', default: '5' },
      duration: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const options: SimulateOptions = {
    file: positionals[0],
    server: values.server,
    adminToken: values['admin-token'],
    template: values.template,
    keep: values.keep,
    json: values.json,
    watch: values.watch,
    intervalMs: seconds('--interval', values.interval) * 1000,
    durationMs: values.duration === undefined ? undefined : seconds('--duration', values.duration) * 1000,
    help: values.help,
  };
  if (!options.help) checkSource(options, positionals.length);
  return options;
}

function seconds(name: string, value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0)
    throw new UsageError(`${name} must be a positive number of seconds`);
  return parsed;
}

function checkSource(options: SimulateOptions, positionals: number): void {
  if (positionals > 1) throw new UsageError('give one .pkpass file');
  if (options.file !== undefined && options.server !== undefined)
    throw new UsageError('give either a .pkpass file or --server, not both');
  if (options.file === undefined && options.server === undefined)
    throw new UsageError('give a .pkpass file, or --server <url> --admin-token <token>');
  if (options.server !== undefined && options.adminToken === undefined)
    throw new UsageError('--server needs --admin-token');
}

/** Where the pass comes from, and what to do to it (change) and after the run (cleanup). */
interface PassSource {
  pass: PassUnderTest;
  change?: () => Promise<void>;
  cleanup: () => Promise<void>;
}

async function passFromFile(file: string): Promise<PassSource> {
  let bundle: Buffer;
  try {
    bundle = await readFile(file);
  } catch (error) {
    throw new Error(`cannot read ${file}: ${errorMessage(error)}`);
  }
  const pass = passUnderTest(readPassJson(bundle));
  return { pass, cleanup: async () => {} };
}

type AdminCall = (method: string, path: string, body?: unknown) => Promise<Record<string, unknown>>;

function adminClient(server: string, token: string): AdminCall {
  const base = server.replace(/\/+$/, '');
  return async (method, path, body) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    }).catch((error: unknown) => {
      throw new Error(`${method} ${base}${path}: ${networkError(error)}`);
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${base}${path} answered ${response.status} ${text}`.trim());
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  };
}

async function firstTemplate(admin: AdminCall): Promise<string> {
  const { templates } = await admin('GET', '/admin/templates');
  const first: unknown = Array.isArray(templates) ? templates[0] : undefined;
  const name = typeof first === 'object' && first !== null && 'name' in first ? first.name : undefined;
  if (typeof name !== 'string') throw new Error('the server has no templates: give --template');
  return name;
}

async function passFromServer(options: SimulateOptions, log: (line: string) => void): Promise<PassSource> {
  const admin = adminClient(options.server ?? '', options.adminToken ?? '');
  const template = options.template ?? (await firstTemplate(admin));
  const created = await admin('POST', '/admin/passes', { template });
  const path = `/admin/passes/${encodeURIComponent(String(created.passTypeIdentifier))}/${encodeURIComponent(String(created.serialNumber))}`;
  const cleanup = async () => {
    if (!options.keep) await admin('DELETE', path);
  };
  const fate = options.keep ? 'kept' : 'deleted at the end; --keep keeps it';
  log(
    `simulate: created pass ${created.passTypeIdentifier}/${created.serialNumber} from template ${template} (${fate})`,
  );
  try {
    const pass = passUnderTest(readPassJson(await download(created.downloadUrl)));
    // Any change makes a new version; userInfo is shown nowhere, so the pass looks the same.
    const change = async () => {
      await admin('PATCH', path, { pass: { userInfo: { simulatedChangeAt: new Date().toISOString() } } });
    };
    return { pass, change, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** The .pkpass behind a downloadUrl, as a user's browser would get it. */
async function download(downloadUrl: unknown): Promise<Uint8Array> {
  if (typeof downloadUrl !== 'string') throw new Error('POST /admin/passes answered no downloadUrl');
  const response = await fetch(downloadUrl, { signal: AbortSignal.timeout(30_000) }).catch(
    (error: unknown) => {
      throw new Error(`the downloadUrl ${downloadUrl}: ${networkError(error)}`);
    },
  );
  if (response.status !== 200) throw new Error(`the downloadUrl ${downloadUrl} answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Where output goes; tests pass their own. */
export interface SimulateIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: SimulateIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

async function simulate(options: SimulateOptions, io: SimulateIo): Promise<number> {
  const log = (line: string) => io.stderr(`${line}\n`);
  const source =
    options.file !== undefined ? await passFromFile(options.file) : await passFromServer(options, log);
  try {
    const run = await runConformance(source.pass, source.change ? { change: source.change } : {});
    const { webServiceURL, passTypeIdentifier, serialNumber } = source.pass;
    const title = `Wallet web service conformance: ${webServiceURL} (pass ${passTypeIdentifier}/${serialNumber})`;
    io.stdout(renderFindings(title, run.findings, { json: options.json }));
    if (options.watch) {
      await watchPass(run, {
        intervalMs: options.intervalMs,
        durationMs: options.durationMs,
        json: options.json,
        write: io.stdout,
      });
    }
    return exitCode(run.findings);
  } finally {
    await source.cleanup();
  }
}

/** `simulate` command: 0 when every rule passed, 1 when one failed, 2 when it could not run. */
export async function runSimulate(args: string[], io: SimulateIo = processIo): Promise<number> {
  let options: SimulateOptions;
  try {
    options = parseSimulateArgs(args);
  } catch (error) {
    io.stderr(`simulate: ${errorMessage(error)}\n\n${simulateUsage}`);
    return 2;
  }
  if (options.help) {
    io.stdout(simulateUsage);
    return 0;
  }
  try {
    return await simulate(options, io);
  } catch (error) {
    io.stderr(`simulate: ${errorMessage(error)}\n`);
    return 2;
  }
}
