import { parseArgs } from 'node:util';
import { verifyAuditChain } from '../../audit/verify.js';
import { UsageError, type CliCommand } from '../command.js';

const HELP = `Usage: mesh-pep audit verify [--partial] [--json] FILE [FILE...]

Verify the hash chain of mesh-pep audit files.

With one FILE, its rotated predecessors FILE.1, FILE.2, ... found next to it are verified first, in
that order, then FILE. With several FILEs, exactly those are verified, in the order given (oldest
first), and each file's first record must link to the last record of the file before it.

Options:
  --partial   accept a chain whose first record does not start at genesis (older files were pruned)
  --json      print the result as one JSON object
  -h, --help  show this help

Exit status: 0 when every record verifies (prints the record count and the last hash), 1 naming
FILE:LINE of the first bad line and why, 2 on a usage error.
`;

export const command: CliCommand = {
  name: 'audit verify',
  summary: 'Verify the hash chain of audit files (exit 1 naming the first bad line)',
  help: HELP,
  async run(args: string[]): Promise<number> {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        allowPositionals: true,
        options: {
          partial: { type: 'boolean', default: false },
          json: { type: 'boolean', default: false },
          help: { type: 'boolean', short: 'h', default: false },
        },
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (!positionals.length) throw new UsageError('audit verify: at least one FILE is required');
    const result = await verifyAuditChain(positionals.length === 1 ? positionals[0]! : positionals, {
      partial: values.partial,
    });
    if (values.json) {
      process.stdout.write(JSON.stringify(result) + '\n');
    } else if (result.ok) {
      process.stdout.write(`ok: ${result.records} records in ${result.files.length} file(s); head ${result.head}\n`);
      if (result.start !== '0'.repeat(64)) process.stdout.write(`note: chain starts after ${result.start} (--partial)\n`);
    } else {
      process.stderr.write(`${result.file}:${result.line}: ${result.reason}\n`);
    }
    return result.ok ? 0 : 1;
  },
};
