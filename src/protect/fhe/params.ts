import { PayloadError } from '../../errors.js';
import type { Context, SEALLibrary } from './seal.js';

/**
 * The one CKKS parameter set mesh-pep uses. 128-bit security (HomomorphicEncryption.org standard,
 * `tc128`) at degree 8192 allows a 218-bit modulus; [60,40,40,60] uses 200. The outer 60-bit primes
 * keep decryption precision and serve key switching; the two 40-bit primes match the 2^40 scale, so a
 * fresh ciphertext can be rescaled twice: multiplicative depth 2 (e.g. a dot product with a weight
 * vector, then a mean or another plaintext multiply). Additions and rotations cost no depth.
 */
export const CKKS = {
  scheme: 'ckks',
  securityLevel: 'tc128',
  polyModulusDegree: 8192,
  coeffModulusBits: [60, 40, 40, 60] as readonly number[],
  scaleBits: 40,
  slots: 4096,
  depth: 2,
  /** Rotation steps for rotate-and-sum over 4096 slots; left rotations by powers of two only. */
  galoisSteps: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048] as readonly number[],
  compression: 'zstd',
} as const;

export const SCALE = 2 ** CKKS.scaleBits;

/** `<keys.dir>/<domain>.fhe.params.json`: the parameters and the key id; public. */
export interface FheParamsFile {
  scheme: 'ckks';
  key_id: string;
  security_level: 'tc128';
  poly_modulus_degree: number;
  coeff_modulus_bits: number[];
  scale_bits: number;
  slots: number;
  depth: number;
  galois_steps: number[];
  compression: 'zstd';
  created_at: string;
}

export function paramsFileFor(keyId: string, now = new Date()): FheParamsFile {
  return {
    scheme: 'ckks',
    key_id: keyId,
    security_level: 'tc128',
    poly_modulus_degree: CKKS.polyModulusDegree,
    coeff_modulus_bits: [...CKKS.coeffModulusBits],
    scale_bits: CKKS.scaleBits,
    slots: CKKS.slots,
    depth: CKKS.depth,
    galois_steps: [...CKKS.galoisSteps],
    compression: 'zstd',
    created_at: now.toISOString(),
  };
}

const sameList = (a: unknown, b: readonly number[]): boolean =>
  Array.isArray(a) && a.length === b.length && a.every((x, i) => x === b[i]);

/** Parses a params file; only the parameter set above is accepted, so keys and code always agree. */
export function parseParamsFile(file: string, text: string): FheParamsFile {
  let doc: Partial<FheParamsFile>;
  try {
    doc = JSON.parse(text) as Partial<FheParamsFile>;
  } catch {
    throw new PayloadError('payload_rejected', `FHE parameters ${file} are not JSON`);
  }
  const ok =
    doc !== null &&
    typeof doc === 'object' &&
    doc.scheme === 'ckks' &&
    typeof doc.key_id === 'string' &&
    /^[A-Za-z0-9._:-]{1,128}$/.test(doc.key_id) &&
    doc.security_level === 'tc128' &&
    doc.poly_modulus_degree === CKKS.polyModulusDegree &&
    sameList(doc.coeff_modulus_bits, CKKS.coeffModulusBits) &&
    doc.scale_bits === CKKS.scaleBits &&
    sameList(doc.galois_steps, CKKS.galoisSteps);
  if (!ok) {
    throw new PayloadError(
      'payload_rejected',
      `FHE parameters ${file} do not describe the supported set (ckks, tc128, 8192, [60,40,40,60], 2^40)`,
    );
  }
  return doc as FheParamsFile;
}

const contexts = new WeakMap<SEALLibrary, Context>();

/**
 * The SEAL context for the parameter set, one per WASM instance and shared by every domain's keys
 * (building it precomputes NTT tables for each level, which is the slow part of loading keys).
 */
export function sealContext(seal: SEALLibrary): Context {
  let context = contexts.get(seal);
  if (!context) {
    const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
    parms.setPolyModulusDegree(CKKS.polyModulusDegree);
    parms.setCoeffModulus(seal.CoeffModulus.Create(CKKS.polyModulusDegree, Int32Array.from(CKKS.coeffModulusBits)));
    context = seal.Context(parms, true, seal.SecurityLevel.tc128);
    parms.delete();
    if (!context.parametersSet()) throw new Error('SEAL rejected the CKKS parameter set');
    contexts.set(seal, context);
  }
  return context;
}
