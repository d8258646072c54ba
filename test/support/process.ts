import { type ChildProcess, type ExecFileOptions, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/paths.js';

/** Children started by the running test; outside a test (beforeAll), by the file. */
const fileChildren = new Set<ChildProcess>();
let testChildren: Set<ChildProcess> | undefined;

/**
 * Makes `child` the running test's (or, outside a test, the file's): test/support/children.ts, a setup file,
 * kills it when that ends, and this process kills it when it exits, so a failed or timed-out test never leaves
 * a server running.
 */
export function ownChild<T extends ChildProcess>(child: T): T {
  const owner = testChildren ?? fileChildren;
  owner.add(child);
  child.once('exit', () => owner.delete(child));
  return child;
}

async function killAll(children: Set<ChildProcess>) {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }),
  );
  children.clear();
}

/** The hooks of test/support/children.ts. */
export const childOwners = {
  beginTest: () => {
    testChildren = new Set();
  },
  endTest: async () => {
    const children = testChildren;
    testChildren = undefined;
    if (children) await killAll(children);
  },
  endFile: () => killAll(fileChildren),
};

process.on('exit', () => {
  for (const child of [...fileChildren, ...(testChildren ?? [])]) child.kill('SIGKILL');
});

const execFileAsync = promisify(execFile);

/** `execFile` to the command's end, output as text, its child owned (ownChild). */
export function runOwned(
  file: string,
  args: readonly string[],
  options: Omit<ExecFileOptions, 'encoding'> = {},
) {
  const running = execFileAsync(file, args, { ...options, encoding: 'utf8' });
  ownChild(running.child);
  return running;
}

/** The server as a real child process (src/server.ts through tsx, as `npm start` runs it), for crash and start tests. */
export interface ServerProcess {
  baseUrl: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * The timeout of a test that starts the server process: each start costs seconds of CPU (Node, tsx, the
 * database), which a busy machine stretches several-fold; the default 30 s would be too close.
 */
export const serverProcessTimeout = 120_000;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Node's flags for a TypeScript child: `node --import tsx` rather than the tsx command, which would start a
 * second Node process around it; exit-with-parent.ts needs the child's stdio to hold an 'ipc' channel.
 */
export const childPreloads = [
  '--import',
  'tsx',
  '--import',
  join(projectRoot, 'test', 'support', 'exit-with-parent.ts'),
];

export async function startServerProcess(env: Record<string, string>, port?: number): Promise<ServerProcess> {
  const listenPort = port ?? (await freePort());
  // `node --import tsx` rather than the tsx command, which would start a second Node process around this one.
  const preloads = [
    '--import',
    'tsx',
    '--import',
    join(projectRoot, 'test', 'support', 'exit-with-parent.ts'),
  ];
  const child = spawn(process.execPath, [...preloads, join(projectRoot, 'src', 'server.ts')], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(listenPort),
      LOG_LEVEL: 'info',
      ...env,
    },
    // The IPC channel is exit-with-parent.ts's lifeline to this process.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  ownChild(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const baseUrl = `http://127.0.0.1:${listenPort}`;
  const started = Date.now();
  while (Date.now() - started < 60_000) {
    // Killed (a signal) too: the test that started it has ended.
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited with ${child.exitCode ?? child.signalCode}:\n${output}`);
    }
    const ready = await fetch(`${baseUrl}/readyz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) return { baseUrl, child, output: () => output, exited };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.kill('SIGKILL');
  throw new Error(`server did not become ready:\n${output}`);
}
