import { parseArgs } from 'node:util';
import { loadPolicyFile } from '../../config/load.js';
import { ensureDevKeys } from '../../server/dev-keys.js';
import type { CliCommand } from '../command.js';
import { configPath } from '../options.js';

export const command: CliCommand = {
  name: 'keys init',
  summary: 'create every missing key file the policy names (development keys)',
  help: `Usage: mesh-pep keys init [--config FILE]

Creates each key file the policy names that does not exist yet, and never overwrites one:
  - the development issuer key pair (identity.jwks_file and keys.issuer_private_key_file),
  - the pseudonym secret (keys.pseudonym_key_file),
  - per-domain keys by tier: RETRIEVAL keyrings <keys.dir>/<domain>.jwks.json, COMPUTATION enclave or
    party keys, FHE CKKS keys.
Private key files are written with mode 0600.`,
  async run(args) {
    const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
    const { policy } = await loadPolicyFile(configPath(values.config));
    const written = await ensureDevKeys(policy);
    if (written.length === 0) process.stdout.write('all key files already exist\n');
    for (const f of written) process.stdout.write(`created ${f}\n`);
    return 0;
  },
};
