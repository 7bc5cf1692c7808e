import { randomBytes } from 'node:crypto';

/**
 * The prime field the additive shares live in: integers mod p with p = 2^127 − 1 (a Mersenne prime).
 * 127 bits leave ample room above the fixed-point range (see `fixed-point.ts`) so sums of very many
 * shared values never wrap, and a Mersenne modulus makes uniform sampling trivial: take 127 random
 * bits and reject the single value p itself would exceed (probability 2^-127 per draw).
 */
export const MODULUS = (1n << 127n) - 1n;
/** Largest field element read as a positive number; anything above is read as negative (x − p). */
export const HALF_MODULUS = (MODULUS - 1n) / 2n;

const SAMPLE_BYTES = 16;
const TOP_MASK = 0x7f;

export function mod(x: bigint): bigint {
  const r = x % MODULUS;
  return r < 0n ? r + MODULUS : r;
}

export function addMod(a: bigint, b: bigint): bigint {
  return mod(a + b);
}

export function subMod(a: bigint, b: bigint): bigint {
  return mod(a - b);
}

/** Signed integer → field element (negative values wrap to the upper half, as in two's complement). */
export function toField(v: bigint): bigint {
  return mod(v);
}

/** Field element → signed integer in (−p/2, p/2]. */
export function fromField(e: bigint): bigint {
  return e > HALF_MODULUS ? e - MODULUS : e;
}

function bytesToBigInt(buf: Uint8Array, offset: number): bigint {
  let v = 0n;
  for (let i = 0; i < SAMPLE_BYTES; i++) v = (v << 8n) | BigInt(buf[offset + i]!);
  return v;
}

/**
 * `count` independent field elements, each uniform on [0, p). Random bytes are drawn in one batch
 * (one syscall per body, not per share); a draw equal to p is rejected and redrawn so no residue is
 * more likely than another.
 */
export function randomFieldElements(count: number): bigint[] {
  const out: bigint[] = [];
  while (out.length < count) {
    const need = count - out.length;
    const buf = randomBytes(need * SAMPLE_BYTES);
    for (let i = 0; i < need; i++) {
      const off = i * SAMPLE_BYTES;
      buf[off] = buf[off]! & TOP_MASK;
      const v = bytesToBigInt(buf, off);
      if (v < MODULUS) out.push(v);
    }
  }
  return out;
}

/** Parses a share as carried in a bundle: a canonical decimal string of an element of [0, p). */
export function parseFieldElement(text: unknown): bigint | undefined {
  if (typeof text !== 'string' || !/^(0|[1-9][0-9]{0,38})$/.test(text)) return undefined;
  const v = BigInt(text);
  return v < MODULUS ? v : undefined;
}
