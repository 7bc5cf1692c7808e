/**
 * Fixed-point encoding of JSON numbers for secret sharing: a value x is carried as the integer
 * round(x · 10^6). A decimal scale (rather than 2^-k) means every number written with at most six
 * fractional digits (money, rates, most sensor readings) comes back as exactly the same double.
 *
 * - Resolution: 10^-6. More fractional digits are rounded half away from zero at the sixth decimal of
 *   the number's shortest decimal form (what `JSON.stringify` prints), so 0.1234565 → 0.123457 and
 *   magnitudes below 5·10^-7 become 0. −0 becomes 0.
 * - Range: |x| ≤ 10^21 (scaled: 10^27 < 2^90). Larger magnitudes, NaN and ±Infinity (e.g. a JSON
 *   literal 1e400, which parses as Infinity) are rejected, never wrapped.
 * - Headroom: the field has 126 bits of signed range, so up to MAX_SUM_TERMS full-range values can be
 *   added share-wise (see `sumShares`) before a total could wrap.
 */
export const SCALE_DIGITS = 6;
export const SCALE = 10n ** BigInt(SCALE_DIGITS);
export const MAX_ABS_VALUE = 1e21;
export const MAX_ABS_SCALED = 10n ** 27n;
/** floor(((p − 1)/2) / 10^27) ≈ 8.5 · 10^10, rounded down to a power of two. */
export const MAX_SUM_TERMS = 2 ** 36;

export class FixedPointRangeError extends RangeError {
  override name = 'FixedPointRangeError';
}

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/;

/** Encodes a finite number within range; throws FixedPointRangeError otherwise. */
export function encodeFixed(x: number): bigint {
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new FixedPointRangeError('value is not a finite number');
  if (Math.abs(x) > MAX_ABS_VALUE) throw new FixedPointRangeError(`value magnitude exceeds ${MAX_ABS_VALUE}`);
  if (x === 0) return 0n;
  const m = DECIMAL.exec(String(x));
  if (!m) throw new FixedPointRangeError('value has no decimal form');
  const [, sign, intPart, fracPart = '', expPart = '0'] = m;
  // value = digits · 10^exp10, computed exactly in BigInt.
  const digits = BigInt(intPart! + fracPart);
  const exp10 = Number(expPart) - fracPart.length + SCALE_DIGITS;
  let scaled: bigint;
  if (exp10 >= 0) {
    scaled = digits * 10n ** BigInt(exp10);
  } else {
    const div = 10n ** BigInt(-exp10);
    scaled = digits / div;
    if ((digits % div) * 2n >= div) scaled += 1n; // half away from zero (sign applied below)
  }
  if (scaled > MAX_ABS_SCALED) throw new FixedPointRangeError(`value magnitude exceeds ${MAX_ABS_VALUE}`);
  return sign === '-' ? -scaled : scaled;
}

/** Decodes a scaled integer back to the nearest double (exact for values with ≤ 6 decimals). */
export function decodeFixed(v: bigint): number {
  if (v === 0n) return 0;
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const int = abs / SCALE;
  const frac = (abs % SCALE).toString().padStart(SCALE_DIGITS, '0');
  return Number(`${neg ? '-' : ''}${int}.${frac}`);
}
