import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mod, MODULUS, toField } from '../../src/protect/computation/field.js';
import { MAX_ABS_SCALED } from '../../src/protect/computation/fixed-point.js';
import { splitSecrets } from '../../src/protect/computation/shares.js';

/**
 * Any N−1 parties' shares must be independent of the secret. We split two very different secrets
 * many times and compare, for every party and every (N−1)-subset of parties (through the sum of its
 * shares, the only thing N−1 colluders could learn from), the distributions under each secret with a
 * two-sample Kolmogorov–Smirnov test and a chi-square test on the top 4 bits. Thresholds sit at a
 * significance level of 1e-9 per test, so a correct splitter fails by chance about once in 10^8 runs;
 * a control shows the same tests catch a splitter whose randomness is too short.
 */
const TRIALS = 3000;
const PARTIES = 3;
/** c(α) = sqrt(−ln(α/2)/2) for α = 1e-9. */
const KS_C = Math.sqrt(-Math.log(1e-9 / 2) / 2);
/** Chi-square critical value for 15 degrees of freedom at α = 1e-9. */
const CHI2_CRIT_15 = 73.63;
const P = Number(MODULUS);

function ksStatistic(a: number[], b: number[]): number {
  const x = [...a].sort((u, v) => u - v);
  const y = [...b].sort((u, v) => u - v);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const t = Math.min(x[i]!, y[j]!);
    while (i < x.length && x[i]! <= t) i++;
    while (j < y.length && y[j]! <= t) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

function ksCritical(n: number, m: number): number {
  return KS_C * Math.sqrt((n + m) / (n * m));
}

/** Two-sample chi-square homogeneity statistic over the top 4 bits (16 bins) of 127-bit elements. */
function chiSquareHighBits(a: bigint[], b: bigint[]): number {
  const bins = (xs: bigint[]) => {
    const c = new Array<number>(16).fill(0);
    for (const x of xs) c[Number(x >> 123n)]!++;
    return c;
  };
  const ca = bins(a);
  const cb = bins(b);
  let chi = 0;
  for (let k = 0; k < 16; k++) {
    const total = ca[k]! + cb[k]!;
    if (total === 0) continue;
    const ea = (total * a.length) / (a.length + b.length);
    const eb = (total * b.length) / (a.length + b.length);
    chi += (ca[k]! - ea) ** 2 / ea + (cb[k]! - eb) ** 2 / eb;
  }
  return chi;
}

/** views[v][trial]: for each subset of parties (singles and every N−1 subset), the sum of its shares mod p. */
function views(split: (secret: bigint) => bigint[], secret: bigint): Map<string, bigint[]> {
  const subsets: number[][] = [];
  for (let p = 0; p < PARTIES; p++) subsets.push([p]);
  for (let skip = 0; skip < PARTIES; skip++) subsets.push([...Array(PARTIES).keys()].filter((p) => p !== skip));
  const out = new Map<string, bigint[]>(subsets.map((s) => [s.join('+'), []]));
  for (let t = 0; t < TRIALS; t++) {
    const shares = split(secret);
    for (const s of subsets) out.get(s.join('+'))!.push(mod(s.reduce((acc, p) => acc + shares[p]!, 0n)));
  }
  return out;
}

function compare(a: Map<string, bigint[]>, b: Map<string, bigint[]>): Array<{ subset: string; ks: number; chi: number }> {
  return [...a.keys()].map((subset) => {
    const xa = a.get(subset)!;
    const xb = b.get(subset)!;
    return {
      subset,
      ks: ksStatistic(
        xa.map((v) => Number(v) / P),
        xb.map((v) => Number(v) / P),
      ),
      chi: chiSquareHighBits(xa, xb),
    };
  });
}

const realSplit = (secret: bigint): bigint[] => splitSecrets([toField(secret)], PARTIES).map((party) => party[0]!);

describe('MPC shares leak nothing to N−1 parties', () => {
  it('shares of 0 and of the largest value are indistinguishable for every party and every N−1 subset', () => {
    const results = [...compare(views(realSplit, 0n), views(realSplit, MAX_ABS_SCALED)), ...compare(views(realSplit, -MAX_ABS_SCALED), views(realSplit, 1n))];
    const crit = ksCritical(TRIALS, TRIALS);
    for (const r of results) {
      assert.ok(r.ks < crit, `KS statistic ${r.ks.toFixed(4)} ≥ ${crit.toFixed(4)} for parties ${r.subset}`);
      assert.ok(r.chi < CHI2_CRIT_15, `chi-square ${r.chi.toFixed(1)} ≥ ${CHI2_CRIT_15} for parties ${r.subset}`);
    }
    assert.equal(results.length, 2 * (PARTIES + PARTIES));
  });

  it('control: the same tests catch a splitter that uses only 64 bits of randomness', () => {
    const weakSplit = (secret: bigint): bigint[] => {
      const r = realSplit(0n).map((s) => s & ((1n << 64n) - 1n));
      const last = mod(toField(secret) - r.slice(0, -1).reduce((a, b) => a + b, 0n));
      return [...r.slice(0, -1), last];
    };
    const results = compare(views(weakSplit, 0n), views(weakSplit, MAX_ABS_SCALED << 30n));
    const crit = ksCritical(TRIALS, TRIALS);
    const caught = results.filter((r) => r.ks >= crit || r.chi >= CHI2_CRIT_15).map((r) => r.subset);
    // The last party's share alone, and every subset including it, gives the secret away.
    assert.ok(caught.includes(String(PARTIES - 1)), `caught: ${caught.join(', ')}`);
    assert.ok(caught.length >= PARTIES, `caught: ${caught.join(', ')}`);
  });
});
