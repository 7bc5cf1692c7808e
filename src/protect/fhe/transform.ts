import { PayloadError } from '../../errors.js';
import { openForDomain, peekDomain, sealForDomain, utf8 } from '../jwe.js';
import type { Keyring } from '../keyring.js';
import type { PathSegment } from '../json-path.js';
import { decryptValue, deleteAll, encryptValues, loadEnvelope } from './codec.js';
import type { FheKeySet } from './keys.js';
import { chunkCount, ciphertextsOf, isFheShaped, type FheEnvelope } from './wire.js';

/**
 * The FHE body transformation over parsed JSON.
 *
 * protect: with no paths configured, every JSON number becomes a scalar `$fhe` and every non-empty
 * flat array of numbers one `$fhe` vector; arrays holding anything else (including nested numeric
 * arrays, i.e. matrices) are walked, so each numeric row becomes its own `$fhe`. With paths, each
 * value a path names must be a number or a flat array of numbers (else the body is rejected), and
 * every other number is JWE-sealed like a string: only what the analyst may compute on is CKKS.
 * Strings and booleans are always JWE-sealed (strings raw, others as JSON with `cty`
 * application/json); `null`, empty arrays and member names stay as they are. Existing `$fhe` values
 * of this key pass through after SEAL has checked they load.
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface TransformKeys {
  fhe: FheKeySet;
  ring: Keyring;
  domain: string;
  /** Compiled `fhe.paths`; empty means everywhere. */
  paths: readonly (readonly PathSegment[])[];
  maxLength: number;
  /** Most ciphertexts this body may produce (`fhe.max_ciphertexts`). */
  maxCiphertexts: number;
  /** Most bytes of ciphertext (base64) this body may produce (`fhe.max_output_bytes`). */
  maxOutputBytes: number;
}

type Token = string | number;
const JSON_TYPE = 'application/json';

/** Deeper documents are refused rather than risking the stack. */
export const MAX_DEPTH = 128;
/**
 * Fewest base64 characters one ciphertext takes (seeded symmetric, zstd: ~216 KB measured; public-key
 * ~440 KB). Used to refuse, before any encryption work, a body whose ciphertexts cannot fit
 * `maxOutputBytes`; the exact count is kept while encrypting as well.
 */
const MIN_CIPHERTEXT_CHARS = 150_000;

function tooDeep(depth: number): void {
  if (depth > MAX_DEPTH) throw new PayloadError('payload_rejected', `JSON nested deeper than ${MAX_DEPTH} levels`);
}

function isRecord(v: Json): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function matches(tokens: readonly Token[], path: readonly PathSegment[]): boolean {
  if (tokens.length !== path.length) return false;
  return path.every((seg, i) => {
    const t = tokens[i]!;
    if (seg.kind === 'wildcard') return true;
    if (seg.kind === 'index') return t === seg.index;
    return t === seg.key;
  });
}

function checkNumbers(values: readonly Json[], maxLength: number): number[] {
  if (values.length > maxLength) throw new PayloadError('payload_rejected', `numeric array of ${values.length} values exceeds the limit of ${maxLength}`);
  for (const v of values) {
    if (typeof v !== 'number') throw new PayloadError('payload_rejected', 'an array to encrypt holds a value that is not a number');
    if (!Number.isFinite(v)) throw new PayloadError('payload_rejected', 'a value to encrypt is not finite');
  }
  return values as number[];
}

function encryptNumberOrVector(v: Json, k: TransformKeys): Json {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new PayloadError('payload_rejected', 'a value to encrypt is not finite');
    return encryptValues(k.fhe, [v], true) as unknown as Json;
  }
  if (Array.isArray(v)) return encryptValues(k.fhe, checkNumbers(v, k.maxLength)) as unknown as Json;
  throw new PayloadError('payload_rejected', 'a value at an FHE path is not a number or a flat array of numbers');
}

function isNumericArray(v: Json[]): boolean {
  return v.length > 0 && v.every((x) => typeof x === 'number');
}

/** A `$fhe` value that is already protected: it must be under this domain's key and load in SEAL. */
function passThrough(v: Json, k: TransformKeys): Json {
  const { cts } = loadEnvelope(k.fhe, v, k.maxLength);
  deleteAll(cts);
  return v;
}

async function seal(v: string | number | boolean, k: TransformKeys): Promise<string> {
  if (typeof v === 'string') return sealForDomain(utf8(v), k.ring, { domain: k.domain });
  return sealForDomain(utf8(JSON.stringify(v)), k.ring, { domain: k.domain, contentType: JSON_TYPE });
}

/** How many ciphertexts `protectJson` would make, counted before any encryption work. */
function countCiphertexts(doc: Json, paths: TransformKeys['paths'], maxLength: number): number {
  const everywhere = paths.length === 0;
  const size = (v: Json): number => (Array.isArray(v) ? chunkCount(checkNumbers(v, maxLength).length) : 1);
  const walk = (v: Json, tokens: Token[]): number => {
    tooDeep(tokens.length);
    if (isFheShaped(v)) return 0;
    if (!everywhere && paths.some((p) => matches(tokens, p))) return size(v);
    if (Array.isArray(v)) {
      if (everywhere && isNumericArray(v)) return size(v);
      return v.reduce<number>((n, x, i) => n + walk(x, [...tokens, i]), 0);
    }
    if (isRecord(v)) return Object.entries(v).reduce<number>((n, [key, x]) => n + walk(x, [...tokens, key]), 0);
    return everywhere && typeof v === 'number' ? 1 : 0;
  };
  return walk(doc, []);
}

/**
 * Encrypts what the domain says and seals the rest. A body is refused (`payload_too_large`) before
 * any encryption when it would need more than `maxCiphertexts` ciphertexts or certainly more than
 * `maxOutputBytes` of them, and while encrypting as soon as the ciphertexts made so far pass
 * `maxOutputBytes`: a small body of many scalars must not become tens of megabytes (issue 17).
 */
export async function protectJson(doc: Json, k: TransformKeys): Promise<Json> {
  const everywhere = k.paths.length === 0;
  const needed = countCiphertexts(doc, k.paths, k.maxLength);
  if (needed > k.maxCiphertexts) {
    throw new PayloadError('payload_too_large', `body would need ${needed} ciphertexts, more than the domain's max_ciphertexts ${k.maxCiphertexts}`);
  }
  if (needed * MIN_CIPHERTEXT_CHARS > k.maxOutputBytes) {
    throw new PayloadError('payload_too_large', `body would need ${needed} ciphertexts, more than the domain's max_output_bytes ${k.maxOutputBytes} holds`);
  }
  let spent = 0;
  const encrypt = (v: Json): Json => {
    const out = encryptNumberOrVector(v, k);
    const env = (out as unknown as { $fhe: FheEnvelope }).$fhe;
    for (const c of ciphertextsOf(env)) spent += c.length;
    if (spent > k.maxOutputBytes) throw new PayloadError('payload_too_large', `protected body passes the domain's max_output_bytes ${k.maxOutputBytes}`);
    return out;
  };
  const walk = async (v: Json, tokens: Token[]): Promise<Json> => {
    tooDeep(tokens.length);
    if (isFheShaped(v)) return passThrough(v, k);
    if (!everywhere && k.paths.some((p) => matches(tokens, p))) return encrypt(v);
    if (Array.isArray(v)) {
      if (everywhere && isNumericArray(v)) return encrypt(v);
      const out: Json[] = [];
      for (let i = 0; i < v.length; i++) out.push(await walk(v[i]!, [...tokens, i]));
      return out;
    }
    if (isRecord(v)) {
      // fromEntries defines members, so a "__proto__" member stays data and never becomes a prototype.
      const out: [string, Json][] = [];
      for (const [key, child] of Object.entries(v)) out.push([key, await walk(child, [...tokens, key])]);
      return Object.fromEntries(out) as Json;
    }
    if (v === null) return null;
    if (everywhere && typeof v === 'number') return encrypt(v);
    if (typeof v === 'number' && !Number.isFinite(v)) throw new PayloadError('payload_rejected', 'a number in the body is not finite');
    return seal(v, k);
  };
  return walk(doc, []);
}

/** Whether a document holds anything `openJson` would open: a `$fhe` value or a JWE of this domain. */
export function holdsProtected(doc: Json, domain: string, depth = 0): boolean {
  tooDeep(depth);
  if (isFheShaped(doc)) return true;
  if (typeof doc === 'string') return peekDomain(doc) === domain;
  if (Array.isArray(doc)) return doc.some((x) => holdsProtected(x, domain, depth + 1));
  if (isRecord(doc)) return Object.values(doc).some((x) => holdsProtected(x, domain, depth + 1));
  return false;
}

/** Sealed values may have been sealed again on a later hop; a few layers are opened, no more. */
const MAX_SEAL_LAYERS = 4;

async function openSealed(s: string, rings: readonly Keyring[], domain: string): Promise<Json> {
  let current: Json = s;
  for (let layer = 0; layer < MAX_SEAL_LAYERS && typeof current === 'string' && peekDomain(current) === domain; layer++) {
    const opened = await openWithAny(current, rings, domain);
    const text = Buffer.from(opened.plaintext).toString('utf8');
    if (opened.contentType === JSON_TYPE) {
      try {
        current = JSON.parse(text) as Json;
      } catch (cause) {
        throw new PayloadError('payload_rejected', 'a sealed JSON value does not parse', { cause });
      }
    } else {
      current = text;
    }
  }
  return current;
}

async function openWithAny(compact: string, rings: readonly Keyring[], domain: string) {
  let last: unknown;
  for (const ring of rings) {
    try {
      return await openForDomain(compact, ring, domain);
    } catch (e) {
      last = e;
    }
  }
  throw last instanceof PayloadError ? last : new PayloadError('payload_rejected', 'sealed value could not be opened', { cause: last });
}

/** Opens every `$fhe` value (needs the secret key) and every sealed value of this domain. */
export async function openJson(doc: Json, fhe: FheKeySet, rings: readonly Keyring[], domain: string, maxLength: number): Promise<Json> {
  const walk = async (v: Json, depth: number): Promise<Json> => {
    tooDeep(depth);
    if (isFheShaped(v)) return decryptValue(fhe, v, maxLength);
    if (typeof v === 'string') return openSealed(v, rings, domain);
    if (Array.isArray(v)) {
      const out: Json[] = [];
      for (const x of v) out.push(await walk(x, depth + 1));
      return out;
    }
    if (isRecord(v)) {
      const out: [string, Json][] = [];
      for (const [key, child] of Object.entries(v)) out.push([key, await walk(child, depth + 1)]);
      return Object.fromEntries(out) as Json;
    }
    return v;
  };
  return walk(doc, 0);
}
