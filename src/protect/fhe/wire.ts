import { PayloadError } from '../../errors.js';
import { CKKS } from './params.js';

/**
 * The `$fhe` wire format (contract section 5). One vector, encrypted under one CKKS key:
 *
 *   {"$fhe": {"scheme": "ckks", "key_id": "ckks-…", "length": n, "ciphertext": "<base64>"}}
 *
 * A vector longer than one ciphertext's 4096 slots is packed in order into ceil(n / 4096)
 * ciphertexts, and then `ciphertext` is replaced by `"slots": 4096, "ciphertexts": ["…", …]`
 * (value i lives in ciphertext floor(i / 4096), slot i mod 4096). A JSON number (not an array) is
 * encrypted as a vector of length 1 with `"scalar": true`, so opening restores a number.
 * Base64 is standard (RFC 4648 section 4) of SEAL's zstd-compressed serialisation.
 */
export interface FheEnvelope {
  scheme: 'ckks';
  key_id: string;
  length: number;
  scalar?: true;
  ciphertext?: string;
  slots?: number;
  ciphertexts?: string[];
}

export interface FheObject {
  $fhe: FheEnvelope;
}

/** Longest base64 ciphertext accepted: a fresh, uncompressed 3-component ciphertext fits well inside. */
const MAX_CIPHERTEXT_CHARS = 1_500_000;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const KEY_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** True for an object whose only member is `$fhe` (validity is checked by `readFheEnvelope`). */
export function isFheShaped(v: unknown): v is { $fhe: unknown } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0] === '$fhe';
}

export function chunkCount(length: number): number {
  return Math.max(1, Math.ceil(length / CKKS.slots));
}

function reject(message: string): never {
  throw new PayloadError('payload_rejected', message);
}

/** Validates a `$fhe` object's shape; ciphertext contents are checked when SEAL loads them. */
export function readFheEnvelope(v: unknown, maxLength: number): FheEnvelope {
  if (!isFheShaped(v)) reject('expected an object {"$fhe": {...}}');
  const e = v.$fhe as Partial<FheEnvelope> | null;
  if (typeof e !== 'object' || e === null || Array.isArray(e)) reject('$fhe must be an object');
  const allowed = new Set(['scheme', 'key_id', 'length', 'scalar', 'ciphertext', 'slots', 'ciphertexts']);
  for (const k of Object.keys(e)) if (!allowed.has(k)) reject('$fhe has an unknown member');
  if (e.scheme !== 'ckks') reject('$fhe.scheme must be "ckks"');
  if (typeof e.key_id !== 'string' || !KEY_ID.test(e.key_id)) reject('$fhe.key_id is missing or malformed');
  if (typeof e.length !== 'number' || !Number.isSafeInteger(e.length) || e.length < 0) reject('$fhe.length must be a non-negative integer');
  if (e.length > maxLength) reject(`$fhe.length ${e.length} exceeds the limit of ${maxLength}`);
  if (e.scalar !== undefined && (e.scalar !== true || e.length !== 1)) reject('$fhe.scalar may only be true, with length 1');
  const n = chunkCount(e.length);
  let list: unknown[];
  if (e.ciphertext !== undefined) {
    if (e.ciphertexts !== undefined || e.slots !== undefined) reject('$fhe has both ciphertext and ciphertexts');
    if (n !== 1) reject(`$fhe of length ${e.length} needs ${n} ciphertexts`);
    list = [e.ciphertext];
  } else {
    if (!Array.isArray(e.ciphertexts)) reject('$fhe has no ciphertext');
    if (e.slots !== CKKS.slots) reject(`$fhe.slots must be ${CKKS.slots}`);
    if (e.ciphertexts.length !== n) reject(`$fhe of length ${e.length} needs ${n} ciphertexts, has ${e.ciphertexts.length}`);
    list = e.ciphertexts;
  }
  for (const c of list) {
    if (typeof c !== 'string' || c.length === 0 || c.length > MAX_CIPHERTEXT_CHARS || !BASE64.test(c)) reject('$fhe ciphertext is not base64 of an acceptable size');
  }
  return e as FheEnvelope;
}

export function ciphertextsOf(e: FheEnvelope): string[] {
  return e.ciphertext !== undefined ? [e.ciphertext] : [...(e.ciphertexts ?? [])];
}

/** Builds the wire object; the single-ciphertext case keeps the contract's exact shape. */
export function makeFheObject(keyId: string, length: number, ciphertexts: readonly string[], scalar = false): FheObject {
  const head = { scheme: 'ckks' as const, key_id: keyId, length, ...(scalar ? { scalar: true as const } : {}) };
  if (ciphertexts.length === 1 && length <= CKKS.slots) return { $fhe: { ...head, ciphertext: ciphertexts[0]! } };
  return { $fhe: { ...head, slots: CKKS.slots, ciphertexts: [...ciphertexts] } };
}
