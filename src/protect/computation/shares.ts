import { PayloadError } from '../../errors.js';
import { MODULUS, mod, randomFieldElements, toField } from './field.js';
import { encodeFixed, FixedPointRangeError } from './fixed-point.js';
import { FieldPathError, parseFieldPath, pointerOf, selectPath } from '../json-path.js';

/** Deepest JSON nesting walked; deeper documents are rejected rather than risking the stack. */
export const MAX_DEPTH = 128;
/** Most numeric values shared from one body (each costs N field samples and N JWE bytes). */
export const MAX_SHARED_VALUES = 100_000;

/** One numeric value to share: where it sits (JSON Pointer tokens) and its fixed-point encoding. */
export interface ShareTarget {
  tokens: (string | number)[];
  pointer: string;
  scaled: bigint;
}

function nonNumeric(pointer: string, what: string): PayloadError {
  return new PayloadError('payload_rejected', `MPC field ${pointer || '/'} holds ${what}, not a JSON number`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

function encodeAt(pointer: string, value: number): bigint {
  try {
    return encodeFixed(value);
  } catch (cause) {
    if (cause instanceof FixedPointRangeError) {
      throw new PayloadError('payload_rejected', `MPC field ${pointer} is out of the fixed-point range: ${cause.message}`);
    }
    throw cause;
  }
}

/** Every number in the document; arrays directly inside arrays are refused (see docs). */
function collectAll(doc: unknown): Array<{ tokens: (string | number)[]; value: number }> {
  const found: Array<{ tokens: (string | number)[]; value: number }> = [];
  const walk = (v: unknown, tokens: (string | number)[], depth: number, inArray: boolean): void => {
    if (depth > MAX_DEPTH) throw new PayloadError('payload_rejected', `JSON body nests deeper than ${MAX_DEPTH} levels`);
    if (typeof v === 'number') {
      found.push({ tokens, value: v });
    } else if (Array.isArray(v)) {
      if (inArray) throw new PayloadError('payload_rejected', `nested array at ${pointerOf(tokens)}: MPC shares scalars and flat arrays only`);
      v.forEach((el, i) => walk(el, [...tokens, i], depth + 1, true));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, el] of Object.entries(v)) walk(el, [...tokens, k], depth + 1, false);
    }
    if (found.length > MAX_SHARED_VALUES) throw new PayloadError('payload_too_large', `more than ${MAX_SHARED_VALUES} numbers to share`);
  };
  walk(doc, [], 0, false);
  return found;
}

/** The numbers the listed paths name; each must be a number or a flat array of numbers. */
function collectListed(doc: unknown, fields: readonly string[]): Array<{ tokens: (string | number)[]; value: number }> {
  const found: Array<{ tokens: (string | number)[]; value: number }> = [];
  for (const field of fields) {
    let segments;
    try {
      segments = parseFieldPath(field);
    } catch (cause) {
      // A bad path is an operator mistake the policy loader should have caught: fail closed, 500.
      if (cause instanceof FieldPathError) throw new PayloadError('internal_error', `computation.fields: ${cause.message}`);
      throw cause;
    }
    for (const node of selectPath(doc, segments)) {
      const pointer = pointerOf(node.tokens);
      if (typeof node.value === 'number') {
        found.push({ tokens: node.tokens, value: node.value });
      } else if (Array.isArray(node.value)) {
        node.value.forEach((el: unknown, i) => {
          if (Array.isArray(el)) throw new PayloadError('payload_rejected', `nested array at ${pointer}: MPC shares scalars and flat arrays only`);
          if (typeof el !== 'number') throw nonNumeric(`${pointer}/${i}`, describe(el));
          found.push({ tokens: [...node.tokens, i], value: el });
        });
      } else {
        throw nonNumeric(pointer, describe(node.value));
      }
      if (found.length > MAX_SHARED_VALUES) throw new PayloadError('payload_too_large', `more than ${MAX_SHARED_VALUES} numbers to share`);
    }
  }
  return found;
}

/**
 * Finds and encodes the values to share. With no `fields`, every number in the document; otherwise
 * the listed paths (absent members are skipped; present non-numbers, nested arrays, NaN/±Infinity and
 * out-of-range magnitudes are rejected with `payload_rejected`).
 */
export function collectTargets(doc: unknown, fields: readonly string[]): ShareTarget[] {
  const raw = fields.length === 0 ? collectAll(doc) : collectListed(doc, fields);
  const seen = new Set<string>();
  const out: ShareTarget[] = [];
  for (const { tokens, value } of raw) {
    const pointer = pointerOf(tokens);
    if (seen.has(pointer)) continue; // two paths may name the same field
    seen.add(pointer);
    out.push({ tokens, pointer, scaled: encodeAt(pointer, value) });
  }
  return out;
}

/**
 * Splits each secret into `parties` additive shares: the first N−1 uniform on [0, p), the last
 * chosen so all N add up to the secret mod p. Any N−1 of them are uniform and independent of the
 * secret. Returns shares[party][value].
 */
export function splitSecrets(secrets: readonly bigint[], parties: number): bigint[][] {
  if (!Number.isInteger(parties) || parties < 2) throw new RangeError('additive sharing needs at least two parties');
  const random = randomFieldElements(secrets.length * (parties - 1));
  const shares: bigint[][] = Array.from({ length: parties }, () => new Array<bigint>(secrets.length));
  secrets.forEach((secret, i) => {
    let acc = 0n;
    for (let p = 0; p < parties - 1; p++) {
      const s = random[i * (parties - 1) + p]!;
      shares[p]![i] = s;
      acc += s;
    }
    shares[parties - 1]![i] = mod(toField(secret) - acc);
  });
  return shares;
}

export { MODULUS };
