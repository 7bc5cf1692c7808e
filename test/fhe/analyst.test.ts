import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PayloadError } from '../../src/errors.js';
import { FheAnalyst, tierModule, type FheObject } from '../../src/protect/fhe/index.js';
import { command as fheCommand } from '../../src/cli/commands/fhe.js';
import { assertClose, copyFheKeys, dec, enc, fheFixture, relErr, type FheFixture } from './setup.js';

const rejected = (e: unknown): boolean => e instanceof PayloadError && e.code === 'payload_rejected';

describe('FHE analyst: computation without the secret key', () => {
  let fx: FheFixture;
  let analyst: FheAnalyst;
  let analystDir: string;
  const x = [0.42, 1.7, -0.3, 12.5, 0.08, 3.25];
  const y = [1.5, -2, 0.75, 4, 10, -0.5];
  let ex: FheObject;
  let ey: FheObject;

  const encrypt = async (doc: unknown): Promise<Record<string, FheObject>> =>
    dec((await tierModule.handler.protect(enc(doc), fx.ctx('fin'))).body) as Record<string, FheObject>;
  const open = async (value: unknown): Promise<unknown> =>
    (dec(await tierModule.openForOperator(enc({ r: value }), { policy: fx.policy, domain: fx.domain('fin'), keyFiles: [] })) as { r: unknown }).r;

  before(async () => {
    fx = await fheFixture();
    await tierModule.ensureDevKeys(fx.policy, fx.domain('fin'));
    // The analyst's machine: params, public, relin and Galois keys only.
    analystDir = path.join(fx.dir, 'analyst');
    await copyFheKeys(fx.policy.keys.dir, 'fin', analystDir, 'fin', { secret: false });
    analyst = await FheAnalyst.open(analystDir, 'fin');
    const e = await encrypt({ x, y });
    ex = e.x!;
    ey = e.y!;
  });
  after(() => fx.cleanup());

  it('has no secret key to work with', async () => {
    assert.deepEqual((await readdir(analystDir)).filter((f) => f.includes('secret')), []);
    assert.equal(analyst.keyId, (await tierModule.keyIds(fx.policy, fx.domain('fin')))[0]);
  });

  it('element-wise add, add-plain and multiply-by-plaintext match plaintext', async () => {
    assertClose(await open(await analyst.add(ex, ey)), x.map((v, i) => v + y[i]!));
    assertClose(await open(await analyst.addPlain(ex, 2.5)), x.map((v) => v + 2.5));
    assertClose(await open(await analyst.addPlain(ex, y)), x.map((v, i) => v + y[i]!));
    assertClose(await open(await analyst.multiplyPlain(ex, -1.25)), x.map((v) => v * -1.25));
    assertClose(await open(await analyst.multiplyPlain(ex, y)), x.map((v, i) => v * y[i]!));
    assertClose(await open(await analyst.multiplyPlain(ex, 0)), x.map(() => 0));
    assertClose(await open(await analyst.multiply(ex, ey)), x.map((v, i) => v * y[i]!));
  });

  it('sum, mean and dot product (a linear model score) match plaintext', async () => {
    const sum = x.reduce((s, v) => s + v, 0);
    const s = await analyst.sum(ex);
    assert.equal(s.$fhe.length, 1);
    assert.equal(s.$fhe.scalar, true);
    assertClose(await open(s), sum);
    assertClose(await open(await analyst.mean(ex)), sum / x.length);
    const score = x.reduce((acc, v, i) => acc + v * y[i]!, 0.25);
    assertClose(await open(await analyst.dot(ex, y, 0.25)), score);
    assertClose(await open(await analyst.dot(ex, x.map(() => 0))), 0);
  });

  it('works across several ciphertexts (vectors longer than 4096 slots)', async () => {
    const n = 5000;
    const a = Array.from({ length: n }, (_, i) => Math.cos(i) * 10);
    const w = Array.from({ length: n }, (_, i) => ((i % 13) - 6) / 10);
    const { a: ea } = await encrypt({ a });
    assertClose(await open(await analyst.sum(ea)), a.reduce((s, v) => s + v, 0));
    assertClose(await open(await analyst.dot(ea, w, -1)), a.reduce((s, v, i) => s + v * w[i]!, -1));
    const doubled = await analyst.add(ea, ea);
    assert.equal(doubled.$fhe.ciphertexts?.length, 2);
    assertClose(await open(doubled), a.map((v) => 2 * v));
  });

  it('chains to depth 2 and refuses a third multiplication', async () => {
    const once = await analyst.multiplyPlain(ex, y);
    assert.equal((await analyst.info(once)).remaining_depth, 1);
    const mean = await analyst.mean(once);
    assertClose(await open(mean), x.reduce((s, v, i) => s + v * y[i]!, 0) / x.length);
    const twice = await analyst.multiplyPlain(once, 0.5);
    assert.equal((await analyst.info(twice)).remaining_depth, 0);
    await assert.rejects(analyst.multiplyPlain(twice, 2), rejected);
    await assert.rejects(analyst.mean(twice), rejected);
    // Adding values of different depths aligns them.
    assertClose(await open(await analyst.add(twice, ex)), x.map((v, i) => v * y[i]! * 0.5 + v));
    // Sum at depth 0 still works (rotations at the plain scale): ~1e-6 absolute error.
    const sum0 = (await open(await analyst.sum(twice))) as number;
    assert.ok(Math.abs(sum0 - x.reduce((s, v, i) => s + v * y[i]! * 0.5, 0)) < 1e-4);
  });

  it('rejects mismatched lengths, bad plaintext operands and foreign keys', async () => {
    const { z } = await encrypt({ z: [1, 2, 3] });
    await assert.rejects(analyst.add(ex, z), rejected);
    await assert.rejects(analyst.dot(ex, [1, 2]), rejected);
    await assert.rejects(analyst.multiplyPlain(ex, [1, Number.NaN, 1, 1, 1, 1]), rejected);
    await assert.rejects(analyst.dot(ex, y, Number.POSITIVE_INFINITY), rejected);
    await assert.rejects(analyst.sum({ $fhe: { ...ex.$fhe, key_id: 'ckks-0000000000000000' } }), rejected);
    await assert.rejects(analyst.sum({ values: [1, 2] }), rejected);
  });

  it('CLI: encrypted features in, score by the analyst, opened by the owner (the docs walkthrough)', async () => {
    const features = [0.42, 1.7, -0.3, 12.5, 0.08];
    const weights = [0.8, -0.25, 1.1, 0.02, 3.0];
    const f = (name: string): string => path.join(fx.dir, name);
    await import('node:fs/promises').then(async ({ writeFile }) => {
      await writeFile(f('features.json'), JSON.stringify({ customer: 'c-1042', features }));
      await writeFile(f('weights.json'), JSON.stringify(weights));
    });
    const run = (args: string[]): Promise<number> => fheCommand.run(args);
    assert.equal(await run(['encrypt', '--config', fx.configFile, '--domain', 'fin', '--out', f('protected.json'), f('features.json')]), 0);
    const protectedText = await readFile(f('protected.json'), 'utf8');
    assert.ok(!protectedText.includes('c-1042'));
    assert.equal(
      await run(['dot', '--keys-dir', analystDir, '--domain', 'fin', '--path', '$.features', '--weights', `@${f('weights.json')}`, '--bias', '0.25', '--out', f('score.json'), f('protected.json')]),
      0,
    );
    const scoreFile = await readFile(f('score.json'));
    const score = dec(await tierModule.openForOperator(scoreFile, { policy: fx.policy, domain: fx.domain('fin'), keyFiles: [] })) as number;
    const plain = features.reduce((s, v, i) => s + v * weights[i]!, 0.25);
    assert.ok(relErr(score, plain) <= 1e-6, `score ${score} vs ${plain}`);
    // The owner also reads the protected body back.
    assertClose(dec(await tierModule.openForOperator(Buffer.from(protectedText), { policy: fx.policy, domain: fx.domain('fin'), keyFiles: [] })), { customer: 'c-1042', features });
  });
});
