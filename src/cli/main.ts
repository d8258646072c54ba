/*
 * The `passkit-server` command: doctor | validate | simulate | openapi. Each prints findings (human, or --json) and
 * exits 0 when nothing failed, 1 when something did, 2 on a usage error.
 */
import { runDoctorCommand } from './doctor.js';
import { runOpenApi } from './openapi.js';
import { runSimulate } from './simulate.js';
import { runValidate } from './validate.js';

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  doctor: runDoctorCommand,
  validate: runValidate,
  simulate: runSimulate,
  openapi: runOpenApi,
};

const USAGE = `usage: passkit-server <command> [options]

  doctor [--json] [--external]         is this deployment ready? (reads the server's environment)
  validate <file.pkpass> [--wwdr <ca.pem>] [--json]
                                       would Wallet accept this pass?
  simulate …                           does this web service behave the way Wallet needs? (simulate --help)
  openapi [--public-url <url>]         prints the OpenAPI document (what /docs/json serves)
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  const run = command === undefined ? undefined : COMMANDS[command];
  if (run === undefined) {
    const help = command === undefined || command === '--help' || command === '-h' || command === 'help';
    (help ? process.stdout : process.stderr).write(USAGE);
    return help ? 0 : 2;
  }
  return run(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 2;
  },
);
