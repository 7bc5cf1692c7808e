import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadPolicyFile } from '../../config/load.js';
import { MeshError } from '../../errors.js';
import { FieldPathError, parseFieldPath, selectPath } from '../../protect/json-path.js';
import { writeStdout } from '../io.js';
import { UsageError, type CliCommand } from '../command.js';
import { configPath, required } from '../options.js';

const HELP = `Usage: mesh-pep fhe <op> [--config FILE | --keys-dir DIR] --domain DOMAIN [options] INPUT [INPUT2]

Computes on FHE-protected values ({"$fhe": ...}) without the secret key: only the domain's
<domain>.fhe.params.json, .public.seal, .relin.seal and .galois.seal files are read. Results are
printed as a {"$fhe": ...} value under the same key; the key owner opens them with
\`mesh-pep open --config FILE --domain DOMAIN RESULT_FILE\`.

Operations:
  encrypt  INPUT                 protect a plaintext JSON body as the PEP does for DOMAIN (needs --config)
  add      A B                   element-wise A + B (equal lengths)
  add-plain A --by P             element-wise A + P
  mul      A --by P              element-wise A x P (plaintext)
  mul      A B                   element-wise A x B (both encrypted; uses the relinearisation keys)
  sum      A                     sum of the elements (a scalar)
  mean     A                     mean of the elements (a scalar)
  dot      A --weights P [--bias N]   P . A + N: a linear model's score (a scalar)
  info     A                     key id, length, ciphertexts, remaining multiplicative depth

Options:
  --config FILE     policy file; its keys.dir holds the key files (default: $MESH_PEP_CONFIG or bundled)
  --keys-dir DIR    read key files from DIR instead (analyst machines without the policy)
  --domain DOMAIN   the FHE domain whose key the values are under
  --path JSONPATH   pick the $fhe value inside each input document (e.g. $.features); default: the
                    input is the $fhe value itself
  --by P, --weights P   a number, a JSON array of numbers, or @FILE holding either
  --bias N          added to the dot product (negative: --bias=-0.5)
  --out FILE        write the result to FILE instead of stdout
INPUT files may be "-" for stdin. Exit 1 with the reason (never values) for bad or foreign input.

Example (a linear model score over encrypted features):
  mesh-pep fhe dot --config policy.yaml --domain financial_models --path '$.features' \\
      --weights @weights.json --bias 0.25 protected.json > score.json
  mesh-pep open --config policy.yaml --domain financial_models score.json`;

const OPS = new Set(['encrypt', 'add', 'add-plain', 'mul', 'sum', 'mean', 'dot', 'info']);

async function readInput(file: string): Promise<Buffer> {
  if (file !== '-') return readFile(file);
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError(`${what} is not JSON`);
  }
}

/** `--by` / `--weights`: a number, a JSON array of numbers, or @FILE holding either. */
async function plainArg(text: string, flag: string): Promise<number | number[]> {
  const raw = text.startsWith('@') ? (await readFile(text.slice(1), 'utf8')).trim() : text;
  const v = parseJsonText(raw, flag);
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return v as number[];
  throw new UsageError(`${flag} must be a finite number or an array of finite numbers`);
}

function pick(doc: unknown, jsonPath: string | undefined): unknown {
  if (jsonPath === undefined) return doc;
  let segments;
  try {
    segments = parseFieldPath(jsonPath);
  } catch (e) {
    if (e instanceof FieldPathError) throw new UsageError(e.message);
    throw e;
  }
  const found = selectPath(doc, segments);
  if (found.length !== 1) throw new UsageError(`--path ${jsonPath} names ${found.length} values in the input; it must name exactly one`);
  return found[0]!.value;
}

async function output(text: string, out: string | undefined): Promise<void> {
  if (out) await writeFile(out, text);
  else await writeStdout(text);
}

export const command: CliCommand = {
  name: 'fhe',
  summary: 'compute on FHE-encrypted values without the secret key (add, mul, sum, mean, dot)',
  help: HELP,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        'keys-dir': { type: 'string' },
        domain: { type: 'string', short: 'd' },
        path: { type: 'string' },
        by: { type: 'string' },
        weights: { type: 'string' },
        bias: { type: 'string' },
        out: { type: 'string', short: 'o' },
      },
      allowPositionals: true,
      strict: true,
    });
    const [op, ...inputs] = positionals;
    if (!op || !OPS.has(op)) throw new UsageError(`give an operation: ${[...OPS].join(', ')}`);
    const domainName = required(values.domain, '--domain');
    const arity = op === 'add' || (op === 'mul' && values.by === undefined) ? 2 : 1;
    if (inputs.length !== arity) throw new UsageError(`${op} takes ${arity} input file${arity > 1 ? 's' : ''}`);
    if ((op === 'add-plain' || (op === 'mul' && inputs.length === 1)) && values.by === undefined) throw new UsageError(`${op} needs --by`);
    if (op === 'dot' && values.weights === undefined) throw new UsageError('dot needs --weights');
    const bias = values.bias === undefined ? 0 : Number(values.bias);
    if (!Number.isFinite(bias)) throw new UsageError('--bias must be a finite number');

    try {
      let keysDir = values['keys-dir'];
      let maxLength: number | undefined;
      if (keysDir === undefined || op === 'encrypt') {
        if (op === 'encrypt' && keysDir !== undefined) throw new UsageError('encrypt needs --config (the domain policy), not --keys-dir');
        const { policy } = await loadPolicyFile(configPath(values.config));
        const domain = policy.domainsByName.get(domainName);
        if (!domain) throw new UsageError(`domain "${domainName}" is not in ${policy.source}`);
        if (domain.tier !== 'FHE') throw new UsageError(`domain "${domainName}" is ${domain.tier}, not FHE`);
        if (op === 'encrypt') {
          const { tierModule } = await import('../../protect/fhe/index.js');
          const body = await readInput(inputs[0]!);
          const result = await tierModule.handler.protect(body, { policy, domain, contentType: 'application/json', direction: 'request' });
          await output(`${Buffer.from(result.body).toString('utf8')}\n`, values.out);
          return 0;
        }
        keysDir = policy.keys.dir;
        maxLength = domain.fhe?.maxLength;
      }
      const { FheAnalyst } = await import('../../protect/fhe/analyst.js');
      const analyst = await FheAnalyst.open(keysDir, domainName, maxLength ? { maxLength } : {});
      const operands = await Promise.all(inputs.map(async (f) => pick(parseJsonText((await readInput(f)).toString('utf8'), f), values.path)));
      const [a, b] = operands;
      let result: unknown;
      switch (op) {
        case 'add':
          result = await analyst.add(a, b);
          break;
        case 'add-plain':
          result = await analyst.addPlain(a, await plainArg(values.by!, '--by'));
          break;
        case 'mul':
          result = b === undefined ? await analyst.multiplyPlain(a, await plainArg(values.by!, '--by')) : await analyst.multiply(a, b);
          break;
        case 'sum':
          result = await analyst.sum(a);
          break;
        case 'mean':
          result = await analyst.mean(a);
          break;
        case 'dot': {
          const w = await plainArg(values.weights!, '--weights');
          if (!Array.isArray(w)) throw new UsageError('--weights must be an array of numbers');
          result = await analyst.dot(a, w, bias);
          break;
        }
        default:
          result = await analyst.info(a);
      }
      await output(`${JSON.stringify(result)}\n`, values.out);
      return 0;
    } catch (e) {
      if (e instanceof MeshError) {
        process.stderr.write(`mesh-pep fhe ${op}: ${e.message} (${e.code})\n`);
        return 1;
      }
      throw e;
    }
  },
};
