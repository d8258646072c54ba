import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '../../src/cli/findings.js';
import { runSimulate } from '../../src/cli/simulate.js';
import { type RuleId, simulateRules } from '../../src/cli/simulate-rules.js';
import { testDatabaseKind } from '../support/database.js';
import { adminToken, startTestServer, type TestServer } from '../support/server.js';
import { type Breakage, startWrongWebService } from '../support/wrong-web-service.js';

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function simulate(args: string[], onStdout?: (stdout: string) => void): Promise<Output> {
  const output = { stdout: '', stderr: '' };
  const code = await runSimulate(args, {
    stdout: (text) => {
      output.stdout += text;
      onStdout?.(output.stdout);
    },
    stderr: (text) => {
      output.stderr += text;
    },
  });
  return { code, ...output };
}

/** The findings of a `--json` run (the first JSON document on stdout). */
function findingsOf(output: Output): Finding[] {
  const end = output.stdout.indexOf('\n}\n');
  const document = JSON.parse(output.stdout.slice(0, end + 2)) as { findings: Finding[] };
  return document.findings;
}

function rulesWith(findings: Finding[], status: Finding['status']): string[] {
  return findings.filter((finding) => finding.status === status).map((finding) => finding.rule);
}

const ruleOf = (id: RuleId) => simulateRules[id].rule;

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'simulate-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe(`simulate against our own server (${testDatabaseKind} database)`, () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  async function passFile(): Promise<{ file: string; passTypeIdentifier: string; serialNumber: string }> {
    const created = await server.admin('POST', '/admin/passes', {
      template: 'loyalty',
      fields: { points: 120 },
    });
    expect(created.status).toBe(201);
    const download = await fetch(String(created.body.downloadUrl));
    const file = join(directory, `${String(created.body.serialNumber)}.pkpass`);
    await writeFile(file, Buffer.from(await download.arrayBuffer()));
    return {
      file,
      passTypeIdentifier: String(created.body.passTypeIdentifier),
      serialNumber: String(created.body.serialNumber),
    };
  }

  it('passes every rule, including what a change must do, with a pass made through the admin API', async () => {
    const output = await simulate(['--server', server.baseUrl, '--admin-token', adminToken, '--json']);
    const findings = findingsOf(output);
    expect(rulesWith(findings, 'fail')).toEqual([]);
    expect(rulesWith(findings, 'warn')).toEqual([]);
    expect(findings.map((finding) => finding.rule)).toEqual(
      expect.arrayContaining([ruleOf('listChanged'), ruleOf('tagMoves'), ruleOf('changeFetched')]),
    );
    expect(findings).toHaveLength(Object.keys(simulateRules).length - 1); // all but "reachable"
    expect(output.code).toBe(0);
    // It names the pass it made (from the first template), and deletes it at the end.
    const created = /created pass (\S+) from template (\S+) /.exec(output.stderr);
    expect(created?.[2]).toBe((await server.templates.list())[0]?.template.name);
    expect((await server.admin('GET', `/admin/passes/${created?.[1]}`)).status).toBe(404);
  });

  it('exits 2 and says what the admin API answered when it cannot make the pass', async () => {
    const wrongToken = await simulate(['--server', server.baseUrl, '--admin-token', 'not-the-admin-token']);
    expect(wrongToken.code).toBe(2);
    expect(wrongToken.stderr).toMatch(/^simulate: GET .+\/admin\/templates answered 401/);
    const unknownTemplate = await simulate([
      '--server',
      server.baseUrl,
      '--admin-token',
      adminToken,
      '--template',
      'nope',
    ]);
    expect(unknownTemplate.code).toBe(2);
    expect(unknownTemplate.stderr).toMatch(/^simulate: POST .+\/admin\/passes answered 400/);
    expect(unknownTemplate.stdout).toBe('');
  });

  it('passes every rule with a .pkpass file, and prints the table', async () => {
    const { file } = await passFile();
    const output = await simulate([file]);
    expect(output.code).toBe(0);
    expect(output.stdout).toContain(`✓ ${ruleOf('listWithoutAuthorization')}: answered 200`);
    expect(output.stdout).toContain(`✓ ${ruleOf('notModified')}:`);
    expect(output.stdout).not.toContain('✗');
    expect(output.stdout).toMatch(/\d+ passed, 0 warnings, 0 failed/);
  });

  it('--watch polls like a device, reports the changed pass.json fields of each new version, stops on Ctrl-C', async () => {
    const { file, passTypeIdentifier, serialNumber } = await passFile();
    let changed: Promise<unknown> | undefined;
    let stopped = false;
    const args = ['--watch', '--interval', '0.1', '--duration', '20', '--json', file];
    const output = await simulate(args, (stdout) => {
      if (!changed && stdout.includes('"event":"watching"'))
        changed = server.admin('PATCH', `/admin/passes/${passTypeIdentifier}/${serialNumber}`, {
          fields: { points: 250 },
        });
      if (!stopped && stdout.includes('"event":"version"')) {
        stopped = true;
        process.emit('SIGINT'); // as Ctrl-C does; --duration is only the safety net here
      }
    });
    await changed;
    expect(output.code).toBe(0);
    const events = output.stdout
      .split('\n')
      .filter((line) => line.startsWith('{"event"'))
      .map((line) => JSON.parse(line) as { event: string; changes?: unknown[] });
    const versions = events.filter((event) => event.event === 'version');
    expect(versions).toHaveLength(1);
    expect(versions[0]?.changes).toContainEqual({
      path: 'storeCard.primaryFields[points].value',
      from: '120',
      to: '250',
    });
    expect(events.at(-1)?.event).toBe('stopped');
    const held = (await server.admin('GET', `/admin/passes/${passTypeIdentifier}/${serialNumber}`)).body;
    expect(held.registeredDevices).toBe(0); // it unregistered when it stopped
  });
});

describe('simulate against a web service that breaks some of Apple’s rules', () => {
  const cases: [Breakage[], RuleId[], RuleId[]?][] = [
    [[], []],
    [['register-new-200'], ['registerNew']],
    [['register-again-201'], ['registerAgain']],
    [['list-requires-authorization'], ['listWithoutAuthorization']],
    [['list-omits-serial'], ['listSerial']],
    [['last-updated-number'], ['lastUpdatedString']],
    [['tag-ignored'], ['listUnchanged']],
    [['wrong-content-type'], ['contentType']],
    [['no-last-modified'], ['lastModified'], ['notModified']],
    [['ignore-if-modified-since'], ['notModified']],
    [['wrong-serial'], ['sameSerial']],
    [['fetch-any-token'], ['fetchWrongToken']],
    [['register-any-token'], ['registerWrongToken']],
    [['unregister-missing-404'], ['unregisterAgain']],
    [['no-log'], ['log']],
    [
      ['list-requires-authorization', 'last-updated-number', 'ignore-if-modified-since', 'register-new-200'],
      ['registerNew', 'listWithoutAuthorization', 'lastUpdatedString', 'notModified'],
    ],
  ];

  it.each(cases)('breaking %j fails exactly %j', async (breaks, failing, unchecked = []) => {
    const service = await startWrongWebService(breaks);
    try {
      const output = await simulate([service.passFile, '--json']);
      const findings = findingsOf(output);
      expect(rulesWith(findings, 'fail')).toEqual(failing.map(ruleOf));
      expect(rulesWith(findings, 'warn')).toEqual(unchecked.map(ruleOf));
      expect(findings).toHaveLength(Object.keys(simulateRules).length - 4); // no reachable, no change rules
      expect(output.code).toBe(failing.length === 0 ? 0 : 1);
    } finally {
      await service.close();
    }
  });

  it('says why and how to fix each failure in the table', async () => {
    const service = await startWrongWebService(['list-requires-authorization']);
    try {
      const output = await simulate([service.passFile]);
      expect(output.code).toBe(1);
      expect(output.stdout).toContain(`✗ ${ruleOf('listWithoutAuthorization')}: answered 401`);
      expect(output.stdout).toContain(`    why: ${simulateRules.listWithoutAuthorization.why}`);
      expect(output.stdout).toContain(`    fix: ${simulateRules.listWithoutAuthorization.fix}`);
    } finally {
      await service.close();
    }
  });

  it('reports a web service that does not answer once, not as every rule failing', async () => {
    const service = await startWrongWebService();
    await service.close();
    const output = await simulate([service.passFile, '--json']);
    const findings = findingsOf(output);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ status: 'fail', rule: ruleOf('reachable') });
    expect(findings[0]?.detail).toContain('ECONNREFUSED');
    expect(output.code).toBe(1);
  });
});

describe('simulate arguments', () => {
  it.each([
    [[]],
    [['--server', 'http://127.0.0.1:1']],
    [['a.pkpass', '--server', 'http://127.0.0.1:1', '--admin-token', 'x']],
    [['a.pkpass', '--interval', '0']],
    [['--unknown']],
  ])('refuses %j with exit code 2 and the usage', async (args) => {
    const output = await simulate(args);
    expect(output.code).toBe(2);
    expect(output.stderr).toContain('Usage:');
  });

  it('exits 2 with a readable message for a file that is not a pass', async () => {
    const file = join(directory, 'not-a-pass.pkpass');
    await writeFile(file, 'hello');
    const output = await simulate([file]);
    expect(output).toMatchObject({ code: 2, stderr: 'simulate: not a zip archive\n' });
  });
});
