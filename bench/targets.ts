/**
 * The closing table of `npm run bench`: each figure of the performance targets (README, "Performance"), with the
 * baseline measured in the same run, the goal, and whether this run met it. The benches return their lines; a bench
 * that could not run (no PostgreSQL) returns lines that say so.
 */
export interface TargetLine {
  /** What was measured, e.g. "Signing: passes/s per core". */
  figure: string;
  ours: string;
  baseline: string;
  goal: string;
  /** Undefined: not measured in this run. */
  met: boolean | undefined;
}

/** The lines of a bench that needs PostgreSQL, when BENCH_DATABASE_URL is not set. */
export const skippedLine = (figure: string, goal: string): TargetLine => ({
  figure,
  ours: 'not measured: set BENCH_DATABASE_URL=postgres://…',
  baseline: '',
  goal,
  met: undefined,
});

export const perSecond = (value: number) => `${Math.round(value).toLocaleString('en-US')}/s`;

export function printTargets(lines: TargetLine[]): void {
  console.log('\n## Targets: this run');
  console.log('| figure | ours | baseline (same run) | goal | met |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const line of lines) {
    const met = line.met === undefined ? '–' : line.met ? 'yes' : '**no**';
    console.log(`| ${line.figure} | ${line.ours} | ${line.baseline} | ${line.goal} | ${met} |`);
  }
}
