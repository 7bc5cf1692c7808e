import { PayloadError } from '../../errors.js';
import { deleteAll, loadEnvelope, saveCiphertext } from './codec.js';
import { loadFheKeys, type FheKeySet } from './keys.js';
import { CKKS, SCALE } from './params.js';
import { guardSeal } from './seal.js';
import type { CipherText, GaloisKeys, PlainText } from './seal.js';
import { makeFheObject, type FheEnvelope, type FheObject } from './wire.js';

/**
 * Computation on `$fhe` values without the secret key: the analyst holds the domain's params, public,
 * relinearisation and Galois key files only (`loadFheKeys(..., {secret: 'none'})`), and every result
 * is again a `$fhe` value under the same key that only the key owner can open.
 *
 * Slot layout invariant: in a vector of length n > 1, slots at positions >= n (the tail of the last
 * ciphertext) hold zero. Encryption guarantees it, and every operation keeps it: plaintext operands
 * are expanded to n values and zero-padded. Sums rotate-and-add over all 4096 slots, which is only
 * right because of that. A length-1 result (sum, mean, dot) is read from slot 0 alone; its other
 * slots may hold copies, and no operation on a length-1 value reads them.
 *
 * Depth: a fresh value can take two plaintext or ciphertext multiplications (each rescales once);
 * a third is refused with `payload_rejected` rather than decrypting to noise later.
 */
export type Plain = number | readonly number[];

export interface ValueInfo {
  key_id: string;
  length: number;
  scalar: boolean;
  ciphertexts: number;
  /** Rescales still possible: 2 for a fresh value, 0 when no multiplication is left. */
  remaining_depth: number;
  scale_bits: number;
  wire_bytes: number;
}

const DEFAULT_MAX_LENGTH = 1 << 20;

interface Loaded {
  envelope: FheEnvelope;
  cts: CipherText[];
}

export class FheAnalyst {
  private constructor(
    private readonly keysDir: string,
    private readonly domain: string,
    private readonly maxLength: number,
    /** Key id of the key set loaded when the analyst was opened. */
    readonly keyId: string,
  ) {}

  /** Loads a domain's public material from a key folder (never its secret key, even when present). */
  static async open(keysDir: string, domain: string, opts: { maxLength?: number } = {}): Promise<FheAnalyst> {
    const keys = await loadFheKeys(keysDir, domain, { secret: 'none' });
    return new FheAnalyst(keysDir, domain, opts.maxLength ?? DEFAULT_MAX_LENGTH, keys.keyId);
  }

  /**
   * Each operation takes the key set from the shared cache, so a WASM instance discarded after an
   * abort (see `guardSeal`) is never used again; an abort becomes `payload_rejected`.
   */
  private run<T>(work: (ops: Ops) => T | Promise<T>): Promise<T> {
    return guardSeal(async () => work(new Ops(await loadFheKeys(this.keysDir, this.domain, { secret: 'none' }), this.maxLength)));
  }

  info(value: unknown): Promise<ValueInfo> {
    return this.run((o) => o.info(value));
  }

  /** Element-wise a + b (equal lengths). */
  add(a: unknown, b: unknown): Promise<FheObject> {
    return this.run((o) => o.add(a, b));
  }

  /** Element-wise a + p, p a number (added to every element) or a vector of a's length. */
  addPlain(a: unknown, p: Plain): Promise<FheObject> {
    return this.run((o) => o.addPlain(a, p));
  }

  /** Element-wise a × p, p a number or a vector of a's length. Uses one level. */
  multiplyPlain(a: unknown, p: Plain): Promise<FheObject> {
    return this.run((o) => o.multiplyPlain(a, p));
  }

  /** Element-wise a × b of two ciphertexts (relinearised). Uses one level. */
  multiply(a: unknown, b: unknown): Promise<FheObject> {
    return this.run((o) => o.multiply(a, b));
  }

  /**
   * Σ aᵢ as a scalar. With depth left this is a dot product with ones (one level, error ~1e-9);
   * at depth 0 the rotations run at the plain 2^40 scale and add ~1e-6 absolute error.
   */
  sum(a: unknown): Promise<FheObject> {
    return this.run((o) => o.sum(a));
  }

  /** (Σ aᵢ) / n as a scalar. Uses one level. */
  mean(a: unknown): Promise<FheObject> {
    return this.run((o) => o.mean(a));
  }

  /** w · a + bias as a scalar: a linear model's score over encrypted features. Uses one level. */
  dot(a: unknown, weights: readonly number[], bias = 0): Promise<FheObject> {
    return this.run((o) => o.dot(a, weights, bias));
  }
}

/** The operations over one key set; synchronous apart from loading the relin/Galois keys. */
class Ops {
  constructor(
    readonly keys: FheKeySet,
    private readonly maxLength: number,
  ) {}

  info(value: unknown): ValueInfo {
    return this.with([value], ([a]) => ({
      key_id: a.envelope.key_id,
      length: a.envelope.length,
      scalar: a.envelope.scalar === true,
      ciphertexts: a.cts.length,
      remaining_depth: this.level(a.cts[0]!),
      scale_bits: Math.log2(a.cts[0]!.scale),
      wire_bytes: JSON.stringify(value).length,
    }));
  }

  /** Element-wise a + b (equal lengths). */
  add(a: unknown, b: unknown): FheObject {
    return this.with([a, b], ([x, y]) => {
      const n = this.sameLength(x, y);
      const out = x.cts.map((ct, i) => this.addAligned(ct, y.cts[i]!));
      return this.emit(out, n, x.envelope.scalar === true && y.envelope.scalar === true);
    });
  }

  /** Element-wise a + p, p a number (added to every element) or a vector of a's length. */
  addPlain(a: unknown, p: Plain): FheObject {
    return this.with([a], ([x]) => {
      const n = x.envelope.length;
      const values = this.expand(p, n);
      const out = x.cts.map((ct, c) => {
        const plain = this.encodeAt(this.chunk(values, c), ct.scale, ct);
        try {
          return this.keys.evaluator.addPlain(ct, plain) as CipherText;
        } finally {
          plain.delete();
        }
      });
      return this.emit(out, n, x.envelope.scalar === true);
    });
  }

  /** Element-wise a × p, p a number or a vector of a's length. Uses one level. */
  multiplyPlain(a: unknown, p: Plain): FheObject {
    return this.with([a], ([x]) => {
      const n = x.envelope.length;
      const values = this.expand(p, n);
      const out = x.cts.map((ct, c) => this.mulPlainChunk(ct, this.chunk(values, c)));
      return this.emit(out, n, x.envelope.scalar === true);
    });
  }

  /** Element-wise a × b of two ciphertexts (relinearised). Uses one level. */
  async multiply(a: unknown, b: unknown): Promise<FheObject> {
    const relin = await this.keys.relinKeys();
    return this.with([a, b], ([x, y]) => {
      const n = this.sameLength(x, y);
      const ev = this.keys.evaluator;
      const out = x.cts.map((ct, i) => {
        const other = y.cts[i]!;
        this.needDepth(ct);
        this.needDepth(other);
        const [l, r] = this.align(ct, other);
        const prod = ev.multiply(l, r) as CipherText;
        try {
          ev.relinearize(prod, relin, prod);
          ev.rescaleToNext(prod, prod);
        } catch (e) {
          prod.delete();
          throw e;
        } finally {
          if (l !== ct) l.delete();
          if (r !== other) r.delete();
        }
        return prod;
      });
      return this.emit(out, n, x.envelope.scalar === true && y.envelope.scalar === true);
    });
  }

  /**
   * Σ aᵢ as a scalar. With depth left this is a dot product with ones (one level, error ~1e-9);
   * at depth 0 the rotations run at the plain 2^40 scale and add ~1e-6 absolute error.
   */
  async sum(a: unknown): Promise<FheObject> {
    const galois = await this.keys.galoisKeys();
    return this.with([a], ([x]) => {
      const n = x.envelope.length;
      if (n > 1 && this.level(x.cts[0]!) >= 1) return this.emit([this.weightedTotal(x.cts, Array.from({ length: n }, () => 1), galois)], 1, true);
      return this.emit([this.total(x.cts, n, galois)], 1, true);
    });
  }

  /** (Σ aᵢ) / n as a scalar. Uses one level. */
  async mean(a: unknown): Promise<FheObject> {
    const galois = await this.keys.galoisKeys();
    return this.with([a], ([x]) => {
      const n = x.envelope.length;
      if (n === 0) throw new PayloadError('payload_rejected', 'the mean of an empty vector is undefined');
      return this.emit([this.weightedTotal(x.cts, Array.from({ length: n }, () => 1 / n), galois)], 1, true);
    });
  }

  /**
   * w · a + bias as a scalar: the score of a linear model with plaintext weights over encrypted
   * features. Uses one level.
   */
  async dot(a: unknown, weights: readonly number[], bias = 0): Promise<FheObject> {
    const galois = await this.keys.galoisKeys();
    return this.with([a], ([x]) => {
      const n = x.envelope.length;
      const w = this.expand(weights, n, true);
      checkFinite([bias]);
      const score = this.weightedTotal(x.cts, w, galois);
      if (bias === 0) return this.emit([score], 1, true);
      const plain = this.encodeAt([bias], score.scale, score);
      try {
        this.keys.evaluator.addPlain(score, plain, score);
        return this.emit([score], 1, true);
      } finally {
        plain.delete();
      }
    });
  }

  // -- internals ----------------------------------------------------------------------------------

  /** Loads inputs, runs `fn`, and frees every input ciphertext whatever happens. */
  private with<T>(values: unknown[], fn: (loaded: Loaded[]) => T): T {
    const loaded: Loaded[] = [];
    try {
      for (const v of values) {
        const l = loadEnvelope(this.keys, v, this.maxLength);
        loaded.push(l);
      }
      return fn(loaded);
    } finally {
      for (const l of loaded) deleteAll(l.cts);
    }
  }

  /** Serialises results and frees them. */
  private emit(cts: CipherText[], length: number, scalar: boolean): FheObject {
    try {
      return makeFheObject(this.keys.keyId, length, cts.map((ct) => saveCiphertext(this.keys, ct)), scalar && length === 1);
    } finally {
      deleteAll(cts);
    }
  }

  private level(ct: CipherText): number {
    return this.keys.context.getContextData(ct.parmsId).chainIndex;
  }

  private needDepth(ct: CipherText): void {
    if (this.level(ct) < 1) throw new PayloadError('payload_rejected', `no multiplicative depth left (the parameters allow ${CKKS.depth})`);
  }

  private sameLength(x: Loaded, y: Loaded): number {
    if (x.envelope.length !== y.envelope.length) {
      throw new PayloadError('payload_rejected', `vector lengths differ (${x.envelope.length} and ${y.envelope.length})`);
    }
    return x.envelope.length;
  }

  /** A plaintext operand as n values: a number is repeated n times, a vector must have length n. */
  private expand(p: Plain, n: number, vectorOnly = false): readonly number[] {
    if (typeof p === 'number') {
      if (vectorOnly) throw new PayloadError('payload_rejected', 'weights must be a vector');
      checkFinite([p]);
      return Array.from({ length: n }, () => p);
    }
    if (!Array.isArray(p)) throw new PayloadError('payload_rejected', 'a plaintext operand must be a number or an array of numbers');
    if (p.length !== n) throw new PayloadError('payload_rejected', `plaintext operand has ${p.length} values, the encrypted vector ${n}`);
    checkFinite(p);
    return p;
  }

  private chunk(values: readonly number[], c: number): number[] {
    const part = values.slice(c * CKKS.slots, (c + 1) * CKKS.slots);
    return part.length > 0 ? part : [0];
  }

  /** Encodes values at a scale and moves the plaintext to `like`'s level. */
  private encodeAt(values: readonly number[], scale: number, like: CipherText): PlainText {
    const plain = this.keys.encoder.encode(Float64Array.from(values), scale) as PlainText;
    try {
      this.keys.evaluator.plainModSwitchTo(plain, like.parmsId, plain);
    } catch (e) {
      plain.delete();
      throw new PayloadError('payload_rejected', 'plaintext operand cannot be encoded at this level', { cause: e });
    }
    return plain;
  }

  /**
   * Σ wᵢ·xᵢ in every slot. The rotations run before the rescale, while the scale is 2^80: the noise
   * each key switch adds is the same in absolute terms, so it is 2^40 times smaller relative to the
   * values (measured: ~1e-9 absolute error instead of ~3e-6 when rotating after the rescale).
   */
  private weightedTotal(cts: readonly CipherText[], weights: readonly number[], galois: GaloisKeys): CipherText {
    const products = cts.map((ct, c) => this.mulPlainChunk(ct, this.chunk(weights, c), false));
    let acc: CipherText;
    try {
      acc = this.total(products, weights.length, galois);
    } finally {
      deleteAll(products);
    }
    try {
      this.keys.evaluator.rescaleToNext(acc, acc);
    } catch (e) {
      acc.delete();
      throw e;
    }
    return acc;
  }

  private mulPlainChunk(ct: CipherText, values: readonly number[], rescale = true): CipherText {
    this.needDepth(ct);
    const ev = this.keys.evaluator;
    let plain: PlainText;
    try {
      plain = this.encodeAt(values, SCALE, ct);
    } catch (e) {
      throw e instanceof PayloadError ? e : new PayloadError('payload_rejected', 'a plaintext value is too large to encode', { cause: e });
    }
    try {
      if (plain.isZero) return this.zeroAfterMultiply(ct, rescale);
      const out = ev.multiplyPlain(ct, plain) as CipherText;
      if (rescale) ev.rescaleToNext(out, out);
      return out;
    } finally {
      plain.delete();
    }
  }

  /**
   * SEAL (throwing build) refuses to multiply by an all-zero plaintext, because the product would be
   * a transparent ciphertext. The product is zero, so it is encrypted afresh with the public key, at
   * exactly the level and scale the multiplication would have produced.
   */
  private zeroAfterMultiply(ct: CipherText, rescale: boolean): CipherText {
    const data = this.keys.context.getContextData(ct.parmsId);
    const moduli = data.parms.coeffModulus;
    // The same double arithmetic SEAL uses for the product's scale and for rescaling it.
    const product = ct.scale * SCALE;
    const scale = rescale ? product / Number(moduli[moduli.length - 1]!) : product;
    const plain = this.keys.encoder.encode(Float64Array.from([0]), scale) as PlainText;
    try {
      this.keys.evaluator.plainModSwitchTo(plain, rescale ? data.nextContextData.parmsId : ct.parmsId, plain);
      return this.keys.encryptor.encrypt(plain) as CipherText;
    } finally {
      plain.delete();
    }
  }

  /**
   * Brings two ciphertexts to the same level and exactly the same scale. Values that went through
   * different rescales have scales differing by the ratio of 2^40 to a 40-bit prime (~1e-7):
   * relabelling the scale would add that much relative error, so the operand with more depth left
   * is instead multiplied by ones encoded at the scale that lands exactly on the other's.
   */
  private align(a: CipherText, b: CipherText): [CipherText, CipherText] {
    const la = this.level(a);
    const lb = this.level(b);
    if (la === lb) {
      if (a.scale !== b.scale) throw new PayloadError('payload_rejected', 'operands at the same depth have different scales');
      return [a, b];
    }
    return la > lb ? [this.matchTo(a, b), b] : [a, this.matchTo(b, a)];
  }

  /** A copy of `ct` (higher level) at `target`'s level and scale. */
  private matchTo(ct: CipherText, target: CipherText): CipherText {
    const ev = this.keys.evaluator;
    let out: CipherText;
    if (ct.scale === target.scale) {
      out = ev.cipherModSwitchTo(ct, target.parmsId) as CipherText;
    } else {
      const moduli = this.keys.context.getContextData(ct.parmsId).parms.coeffModulus;
      const plainScale = (target.scale * Number(moduli[moduli.length - 1]!)) / ct.scale;
      const ones = this.encodeAt(new Array<number>(CKKS.slots).fill(1), plainScale, ct);
      try {
        out = ev.multiplyPlain(ct, ones) as CipherText;
      } finally {
        ones.delete();
      }
      ev.rescaleToNext(out, out);
      if (this.level(out) > this.level(target)) ev.cipherModSwitchTo(out, target.parmsId, out);
    }
    // What is left is floating-point rounding in SEAL's scale arithmetic (~1 ulp).
    if (Math.abs(out.scale - target.scale) / target.scale > 1e-12) {
      out.delete();
      throw new PayloadError('payload_rejected', 'operands have incompatible scales');
    }
    out.setScale(target.scale);
    return out;
  }

  private addAligned(a: CipherText, b: CipherText): CipherText {
    const [l, r] = this.align(a, b);
    try {
      return this.keys.evaluator.add(l, r) as CipherText;
    } finally {
      if (l !== a) l.delete();
      if (r !== b) r.delete();
    }
  }

  /** Adds the chunks, then rotate-and-adds over all slots: every slot ends up holding the total. */
  private total(cts: readonly CipherText[], length: number, galois: GaloisKeys): CipherText {
    const ev = this.keys.evaluator;
    const acc = cts[0]!.clone();
    try {
      for (const ct of cts.slice(1)) ev.add(acc, ct, acc);
      if (length > 1) {
        for (const step of CKKS.galoisSteps) {
          const rotated = ev.rotateVector(acc, step, galois) as CipherText;
          ev.add(acc, rotated, acc);
          rotated.delete();
        }
      }
      return acc;
    } catch (e) {
      acc.delete();
      throw e;
    }
  }
}

function checkFinite(values: readonly unknown[]): void {
  for (const v of values) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new PayloadError('payload_rejected', 'plaintext operands must be finite numbers');
  }
}

