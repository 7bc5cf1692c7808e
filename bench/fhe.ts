/**
 * FHE tier benchmark (issue 5). Run: `npx tsc -p tsconfig.json && node dist/bench/fhe.js [--iterations N]`.
 *
 * Measures, in this fresh process: node-seal WASM load, key generation, key load, encode+encrypt+
 * serialise of one 4,096-value vector in public-key and seeded-symmetric mode, wire bytes per value
 * (base64 of zstd), the analyst's dot product, and the owner's decryption. Times are medians.
 * Keys are generated in a temp folder and removed afterwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FheAnalyst } from '../src/protect/fhe/analyst.js';
import { decryptValue, encryptValues } from '../src/protect/fhe/codec.js';
import { generateFheKeys, loadFheKeys } from '../src/protect/fhe/keys.js';
import { CKKS, sealContext } from '../src/protect/fhe/params.js';
import { loadSeal, sealLoadMillis } from '../src/protect/fhe/seal.js';

const { values: opts } = parseArgs({ options: { iterations: { type: 'string', default: '100' } } });
const N = Math.max(5, Number(opts.iterations));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time<T>(fn: () => T): [T, number] {
  const t = performance.now();
  const r = fn();
  return [r, performance.now() - t];
}

async function timeAsync<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
}

const dir = await mkdtemp(path.join(tmpdir(), 'mesh-pep-bench-fhe-'));
try {
  const seal = await loadSeal();
  const wasmMs = sealLoadMillis()!;
  const [, contextMs] = time(() => sealContext(seal));
  const [, keygenMs] = await timeAsync(() => generateFheKeys(dir, 'bench'));
  // Fresh loads (the cache is keyed by folder/domain/secret): the owner, then a public-key-only side.
  const [owner, ownerLoadMs] = await timeAsync(() => loadFheKeys(dir, 'bench', { secret: 'auto' }));
  const [pub, publicLoadMs] = await timeAsync(() => loadFheKeys(dir, 'bench', { secret: 'none' }));
  const analyst = await FheAnalyst.open(dir, 'bench');
  const [, galoisLoadMs] = await timeAsync(() => pub.galoisKeys());

  const vector = Float64Array.from({ length: CKKS.slots }, (_, i) => Math.sin(i) * 1000);
  const run = (keys: typeof owner) => {
    const times: number[] = [];
    let chars = 0;
    for (let i = 0; i < N + 3; i++) {
      const [obj, ms] = time(() => encryptValues(keys, vector));
      if (i >= 3) times.push(ms);
      chars = obj.$fhe.ciphertext!.length;
    }
    return { ms: median(times), bytesPerValue: chars / CKKS.slots };
  };
  const seeded = run(owner);
  const publicKey = run(pub);

  const encrypted = encryptValues(owner, vector);
  const weights = Array.from({ length: CKKS.slots }, (_, i) => ((i % 17) - 8) / 100);
  await analyst.dot(encrypted, weights); // warm-up
  const dotTimes: number[] = [];
  let score: unknown;
  for (let i = 0; i < Math.min(N, 20); i++) {
    const [r, ms] = await timeAsync(() => analyst.dot(encrypted, weights));
    score = r;
    dotTimes.push(ms);
  }
  const decTimes: number[] = [];
  for (let i = 0; i < Math.min(N, 20); i++) decTimes.push(time(() => decryptValue(owner, encrypted, 1 << 20))[1]);
  const plainScore = Array.from(vector).reduce((s, v, i) => s + v * weights[i]!, 0);
  const got = decryptValue(owner, score, 1) as number;

  const results = {
    node: process.version,
    params: `CKKS ${CKKS.securityLevel} N=${CKKS.polyModulusDegree} q=[${CKKS.coeffModulusBits.join(',')}] scale=2^${CKKS.scaleBits}`,
    iterations: N,
    wasm_load_ms: +wasmMs.toFixed(1),
    context_ms: +contextMs.toFixed(1),
    keygen_ms: +keygenMs.toFixed(1),
    key_load_owner_ms: +ownerLoadMs.toFixed(1),
    key_load_public_ms: +publicLoadMs.toFixed(1),
    galois_key_load_ms: +galoisLoadMs.toFixed(1),
    encrypt_4096_public_key_ms: +publicKey.ms.toFixed(2),
    bytes_per_value_public_key: +publicKey.bytesPerValue.toFixed(1),
    encrypt_4096_seeded_ms: +seeded.ms.toFixed(2),
    bytes_per_value_seeded: +seeded.bytesPerValue.toFixed(1),
    analyst_dot_4096_ms: +median(dotTimes).toFixed(1),
    decrypt_4096_ms: +median(decTimes).toFixed(2),
    dot_relative_error: Math.abs(got - plainScore) / Math.abs(plainScore),
  };
  const targets = [
    ['public-key encrypt <= 8 ms', results.encrypt_4096_public_key_ms <= 8],
    ['public-key <= 110 B/value', results.bytes_per_value_public_key <= 110],
    ['seeded encrypt <= 4 ms', results.encrypt_4096_seeded_ms <= 4],
    ['seeded <= 55 B/value', results.bytes_per_value_seeded <= 55],
  ] as const;
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  for (const [name, ok] of targets) process.stdout.write(`${ok ? 'meets ' : 'MISSES'} ${name}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
