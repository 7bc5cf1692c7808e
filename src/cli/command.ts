/**
 * One CLI command. `name` may have two words (`keys init`, `audit verify`). `run` returns the exit
 * code; it prints its own output. Options are parsed with node:util parseArgs inside each command.
 */
export interface CliCommand {
  name: string;
  summary: string;
  /** Full help text printed for `--help`, starting with the usage line. */
  help: string;
  run(args: string[]): Promise<number>;
}

/** A caller mistake on the command line: printed without a stack, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
