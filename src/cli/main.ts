#!/usr/bin/env node
import { UsageError } from './command.js';
import { COMMANDS } from './registry.js';

const USAGE = `mesh-pep: policy enforcement point for AI-agent traffic in an Envoy/Istio mesh

Usage: mesh-pep <command> [options]   (mesh-pep <command> --help for details)

Commands:
`;

async function main(argv: string[]): Promise<number> {
  const twoWords = argv.slice(0, 2).join(' ');
  const entry = COMMANDS.find((c) => c.name === twoWords) ?? COMMANDS.find((c) => c.name === argv[0]);
  if (!entry) {
    const lines = await Promise.all(COMMANDS.map(async (c) => `  ${c.name.padEnd(14)} ${(await c.load()).summary}`));
    const out = USAGE + lines.join('\n') + '\n';
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      process.stdout.write(out);
      return 0;
    }
    process.stderr.write(`mesh-pep: unknown command "${argv.join(' ')}"\n\n${out}`);
    return 2;
  }
  const command = await entry.load();
  const rest = argv.slice(entry.name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help.endsWith('\n') ? command.help : command.help + '\n');
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`mesh-pep ${command.name}: ${(e as Error).message}\n\n${command.help}\n`);
      return 2;
    }
    process.stderr.write(`mesh-pep ${command.name}: ${(e as Error).message}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`mesh-pep: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
