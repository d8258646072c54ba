// The one result shape of the `doctor`, `validate` and `simulate` commands, its two renderings (human,
// --json) and the exit code. Shared by all three commands: keep it stable.

export type FindingStatus = 'pass' | 'warn' | 'fail';

export type Finding = {
  status: FindingStatus;
  /** The rule checked, in Apple's words where there are some (e.g. "pass.json: formatVersion is 1"). */
  rule: string;
  /** What was found. */
  detail: string;
  /** How to fix it (for warn and fail). */
  fix?: string;
  /** Why Wallet or APNs cares. */
  why?: string;
};

export type RenderOptions = { json: boolean };

const SYMBOL: Record<FindingStatus, string> = { pass: '✓', warn: '⚠', fail: '✗' };

export function pass(rule: string, detail: string): Finding {
  return { status: 'pass', rule, detail };
}

export function warn(rule: string, detail: string, fix: string, why?: string): Finding {
  return why === undefined
    ? { status: 'warn', rule, detail, fix }
    : { status: 'warn', rule, detail, fix, why };
}

export function fail(rule: string, detail: string, fix: string, why?: string): Finding {
  return why === undefined
    ? { status: 'fail', rule, detail, fix }
    : { status: 'fail', rule, detail, fix, why };
}

export function summarize(findings: readonly Finding[]): Record<FindingStatus, number> {
  const counts: Record<FindingStatus, number> = { pass: 0, warn: 0, fail: 0 };
  for (const finding of findings) counts[finding.status] += 1;
  return counts;
}

/** 0 when nothing failed (warnings do not fail), 1 otherwise. */
export function exitCode(findings: readonly Finding[]): number {
  return findings.some((finding) => finding.status === 'fail') ? 1 : 0;
}

/**
 * The text to print. With `json`, one JSON document:
 * `{ title, ok, summary: {pass, warn, fail}, findings: Finding[] }`. Otherwise one line per finding
 * (✓ / ⚠ / ✗, rule, detail) with indented "why:" and "fix:" lines, then a summary line.
 */
export function renderFindings(title: string, findings: readonly Finding[], options: RenderOptions): string {
  const summary = summarize(findings);
  if (options.json) {
    return `${JSON.stringify({ title, ok: summary.fail === 0, summary, findings }, null, 2)}\n`;
  }
  const lines = [title, ''];
  for (const finding of findings) lines.push(...renderOne(finding));
  lines.push('', `${summary.pass} passed, ${summary.warn} warnings, ${summary.fail} failed`);
  return `${lines.join('\n')}\n`;
}

function renderOne(finding: Finding): string[] {
  const lines = [`${SYMBOL[finding.status]} ${finding.rule}: ${finding.detail}`];
  if (finding.status === 'pass') return lines;
  if (finding.why !== undefined) lines.push(`    why: ${finding.why}`);
  if (finding.fix !== undefined) lines.push(`    fix: ${finding.fix}`);
  return lines;
}
