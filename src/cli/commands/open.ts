import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadPolicyFile } from '../../config/load.js';
import { MeshError } from '../../errors.js';
import { tierModule } from '../../protect/registry.js';
import { UsageError, type CliCommand } from '../command.js';
import { configPath, required } from '../options.js';
import { readStdin } from '../io.js';


export const command: CliCommand = {
  name: 'open',
  summary: 'print the plaintext of a protected body (RETRIEVAL/FHE with domain keys, COMPUTATION with --key)',
  help: `Usage: mesh-pep open [--config FILE] --domain DOMAIN [--key FILE ...] [BODY_FILE]

Reads a body that mesh-pep protected for DOMAIN (from BODY_FILE, or stdin when omitted or "-") and
writes its plaintext to stdout, byte for byte.
  RETRIEVAL  a compact JWE; opened with the domain keyring <keys.dir>/<domain>.jwks.json, or with the
             JWK Set file(s) given with --key.
  FHE        opened with the domain's CKKS secret key.
  COMPUTATION needs the recipient's (enclave's or party's) private JWK file(s) with --key.
Exit 1 (with the reason, never the body) when the input is not this domain's protected material,
was tampered with, or no key opens it.

Example:
  mesh-pep open --config config/security_mesh.yaml --domain agent_memory stored.jwe`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        domain: { type: 'string', short: 'd' },
        key: { type: 'string', multiple: true },
      },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length > 1) throw new UsageError('give at most one body file');
    const domainName = required(values.domain, '--domain');
    const { policy } = await loadPolicyFile(configPath(values.config));
    const domain = policy.domainsByName.get(domainName);
    if (!domain) throw new UsageError(`domain "${domainName}" is not in ${policy.source}`);
    const file = positionals[0];
    const body = file === undefined || file === '-' ? await readStdin() : await readFile(file);
    const mod = await tierModule(domain.tier);
    try {
      const plaintext = await mod.openForOperator(body, { policy, domain, keyFiles: values.key ?? [] });
      await new Promise<void>((resolve, reject) => process.stdout.write(plaintext, (e) => (e ? reject(e) : resolve())));
      return 0;
    } catch (e) {
      if (e instanceof MeshError) {
        process.stderr.write(`mesh-pep open: ${e.message} (${e.code})\n`);
        return 1;
      }
      throw e;
    }
  },
};
