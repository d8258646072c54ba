/*
 * What test/support/children.ts and exit-with-parent.ts promise: a child a test started does not outlive it,
 * nor the process that started it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { childPreloads, ownChild } from './process.js';

const idle = ['-e', 'setInterval(() => {}, 1000)'];

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('children a test starts', () => {
  let left: ChildProcess;

  it('(a test that leaves one running)', () => {
    left = ownChild(spawn(process.execPath, idle, { stdio: 'ignore' }));
    expect(left.exitCode).toBeNull();
  });

  it('are killed when that test ends', () => {
    expect(left.signalCode).toBe('SIGKILL');
  });

  it('go when the process that started them is killed -9', async () => {
    // A parent that starts a child as startServerProcess does and prints its pid.
    const parentScript = `
      const { spawn } = await import('node:child_process');
      const child = spawn(process.execPath, ${JSON.stringify([...childPreloads, ...idle])},
        { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
      console.log(child.pid);`;
    const parent = ownChild(
      spawn(process.execPath, ['--input-type=module', '-e', parentScript], {
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    );
    const [line] = (await once(parent.stdout ?? parent, 'data')) as [Buffer];
    const pid = Number(line.toString().trim());
    expect(isRunning(pid)).toBe(true);
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    for (let i = 0; i < 200 && isRunning(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(isRunning(pid)).toBe(false);
  });
});
