import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parsePolicy } from '../../config/load.js';
import { formatProblem } from '../../errors.js';
import type { CliCommand } from '../command.js';
import { configPath } from '../options.js';

export const command: CliCommand = {
  name: 'validate',
  summary: 'check a policy file; every problem as file:line:col: message',
  help: `Usage: mesh-pep validate --config FILE

Checks a security_mesh policy file without starting anything. Prints every problem as
file:line:col: message (warnings too) and exits 0 when there is no error, 1 otherwise.`,
  async run(args) {
    const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
    const file = values.config ?? configPath(undefined);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      process.stderr.write(`${file}:1:1: cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
      return 1;
    }
    const { policy, problems } = parsePolicy(text, file);
    for (const p of problems) (p.severity === 'error' ? process.stderr : process.stdout).write(formatProblem(p) + '\n');
    if (!policy) return 1;
    process.stdout.write(`${file}: ok (${policy.domains.length} domains: ${policy.domains.map((d) => `${d.name}/${d.tier}`).join(', ')})\n`);
    return 0;
  },
};
