import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadPolicyFile } from '../../config/load.js';
import { MeshError } from '../../errors.js';
import { computationHandler } from '../../protect/computation/handler.js';
import { combineSums, openPartyBundle, parseEnvelope, sumShares, type OpenedBundle, type PartySum } from '../../protect/computation/mpc.js';
import { loadPrivateKeyFiles } from '../../protect/computation/private-keys.js';
import { UsageError, type CliCommand } from '../command.js';
import { configPath, required } from '../options.js';

const HELP = `Usage: mesh-pep mpc <op> [options] FILE...

The party side of COMPUTATION domains in MPC mode (docs/computation.md). No policy file is needed:
a party holds only its own private key and the protected bodies ({"$mpc": ...}).

Operations:
  protect --domain DOMAIN [--config FILE] BODY
        split a plaintext JSON body as the PEP does for the MPC DOMAIN (for tests and batch jobs);
        prints the protected body {"$mpc": ...}
  sum --key PARTY_KEY [--field POINTER ...] BODY...
        open this party's bundle in each protected BODY and add its shares locally (all shares, or
        only the fields given with --field). Prints the party's sum
        (JSON). One party's sum is a uniformly random field element: it reveals nothing alone.
  combine SUM...
        add the sums of ALL parties (one file each) and print {"total": <number>, "terms": <n>}.

Options:
  --config FILE  policy file (protect only; default: $MESH_PEP_CONFIG or the bundled policy)
  --domain NAME  the COMPUTATION domain in MPC mode (protect only)
  --key FILE     the party's private JWK (or JWK Set) file; repeatable
  --field PATH   a shared field to include in the sum: a JSON Pointer (/revenue) or a field path
                 ($.orders[*].amount); repeatable
  --out FILE     write the result to FILE instead of stdout
FILE may be "-" for stdin. Exit 1 with the reason (never a value) for foreign, tampered or
incomplete input.

Example (two parties, three records):
  for r in r1 r2 r3; do mesh-pep mpc protect --config policy.yaml --domain cross_cloud $r.plain.json > $r.json; done
  mesh-pep mpc sum --key aws.private.jwk.json --field /revenue r1.json r2.json r3.json > aws.sum.json
  mesh-pep mpc sum --key gcp.private.jwk.json --field /revenue r1.json r2.json r3.json > gcp.sum.json
  mesh-pep mpc combine aws.sum.json gcp.sum.json`;

async function readInput(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  return readFile(file, 'utf8');
}

async function partySum(keyFiles: readonly string[], fields: readonly string[] | undefined, bodies: readonly string[]): Promise<PartySum> {
  if (keyFiles.length === 0) throw new UsageError('--key is required');
  if (bodies.length === 0) throw new UsageError('give at least one protected body file');
  const keys = await loadPrivateKeyFiles(keyFiles);
  const kids = new Set(keys.map((k) => k.kid));
  const opened: OpenedBundle[] = [];
  for (const file of bodies) {
    const env = parseEnvelope(await readInput(file));
    const mine = env.parties.find((p) => kids.has(p.kid));
    if (!mine) throw new UsageError(`${file}: none of its bundles is sealed to the given key`);
    opened.push(await openPartyBundle(mine, keys));
  }
  return sumShares(opened, fields);
}

async function protect(config: string | undefined, domainName: string | undefined, files: readonly string[]): Promise<string> {
  if (files.length !== 1) throw new UsageError('give exactly one plaintext JSON body file');
  const name = required(domainName, '--domain');
  const { policy } = await loadPolicyFile(configPath(config));
  const domain = policy.domainsByName.get(name);
  if (!domain) throw new UsageError(`domain "${name}" is not in ${policy.source}`);
  if (domain.computation?.mode !== 'mpc') throw new UsageError(`domain "${name}" is not a COMPUTATION domain in MPC mode`);
  const body = new TextEncoder().encode(await readInput(files[0]!));
  const out = await computationHandler.protect(body, { policy, domain, contentType: 'application/json', direction: 'request' });
  return new TextDecoder().decode(out.body);
}

async function combine(files: readonly string[]): Promise<{ total: number; terms: number }> {
  if (files.length === 0) throw new UsageError('give the sum file of every party');
  const sums: PartySum[] = [];
  for (const file of files) {
    try {
      sums.push(JSON.parse(await readInput(file)) as PartySum);
    } catch {
      throw new UsageError(`${file} is not JSON`);
    }
  }
  return combineSums(sums);
}

export const command: CliCommand = {
  name: 'mpc',
  summary: 'party side of MPC domains: sum shares locally, combine party sums into a total',
  help: HELP,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        key: { type: 'string', multiple: true },
        field: { type: 'string', multiple: true },
        out: { type: 'string' },
        config: { type: 'string', short: 'c' },
        domain: { type: 'string', short: 'd' },
      },
      allowPositionals: true,
      strict: true,
    });
    const [op, ...files] = positionals;
    try {
      let text: string;
      if (op === 'protect') text = `${await protect(values.config, values.domain, files)}\n`;
      else if (op === 'sum') text = `${JSON.stringify(await partySum(values.key ?? [], values.field, files), null, 2)}\n`;
      else if (op === 'combine') text = `${JSON.stringify(await combine(files))}\n`;
      else throw new UsageError(op === undefined ? 'give an operation: protect, sum or combine' : `unknown operation "${op}"`);
      if (values.out) await writeFile(values.out, text);
      else process.stdout.write(text);
      return 0;
    } catch (e) {
      if (e instanceof MeshError) {
        process.stderr.write(`mesh-pep mpc: ${e.message} (${e.code})\n`);
        return 1;
      }
      throw e;
    }
  },
};
