import { createLogger, type Logger } from '../../src/logger.js';

export type LogLine = Record<string, unknown>;

/** The logger as server.ts makes it (src/logger.ts, at info), writing each line, parsed, into `lines` instead of stdout. */
export function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = createLogger({
    level: 'info',
    destination: { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
  });
  return { log, lines };
}
