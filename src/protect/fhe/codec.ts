import { PayloadError } from '../../errors.js';
import type { FheKeySet } from './keys.js';
import { CKKS, SCALE } from './params.js';
import { checkCiphertextBlob } from './blob.js';
import { isWasmAbort, type CipherText } from './seal.js';
import { chunkCount, ciphertextsOf, makeFheObject, readFheEnvelope, type FheEnvelope, type FheObject } from './wire.js';

/**
 * Between JSON numbers and `$fhe` objects. Every SEAL object made here is deleted before returning:
 * the WASM heap is not garbage collected.
 */

/** Encrypts values (already checked finite) as one `$fhe` object, packing 4096 values per ciphertext. */
export function encryptValues(keys: FheKeySet, values: ArrayLike<number>, scalar = false): FheObject {
  const n = values.length;
  const out: string[] = [];
  const zstd = keys.seal.ComprModeType.zstd;
  for (let c = 0; c < chunkCount(n); c++) {
    const from = c * CKKS.slots;
    const chunk = new Float64Array(Math.max(1, Math.min(CKKS.slots, n - from)));
    for (let i = 0; i < chunk.length && from + i < n; i++) chunk[i] = values[from + i]!;
    let plain;
    try {
      plain = keys.encoder.encode(chunk, SCALE);
    } catch (cause) {
      throw new PayloadError('payload_rejected', 'a value is too large to encode under the CKKS scale', { cause });
    }
    if (!plain) throw new PayloadError('payload_rejected', 'CKKS encoding produced nothing');
    try {
      if (keys.mode === 'seeded-symmetric') {
        // Seeded: the random half of the ciphertext is replaced by its seed, halving the bytes.
        const ser = keys.encryptor.encryptSymmetricSerializable(plain);
        out.push(base64(ser.saveArray(zstd)));
        ser.delete();
      } else {
        const ct = keys.encryptor.encrypt(plain) as CipherText;
        out.push(base64(ct.saveArray(zstd)));
        ct.delete();
      }
    } finally {
      plain.delete();
    }
  }
  return makeFheObject(keys.keyId, n, out, scalar);
}

/** Node's base64 of the bytes beats node-seal's own `save()` string conversion (measured ~0.5 ms per ciphertext). */
function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Serialises a computed ciphertext (not seeded: only fresh symmetric encryptions can be). */
export function saveCiphertext(keys: FheKeySet, ct: CipherText): string {
  return base64(ct.saveArray(keys.seal.ComprModeType.zstd));
}

export function deleteAll(cts: readonly CipherText[]): void {
  for (const ct of cts) ct.delete();
}

/**
 * Parses and loads a `$fhe` object's ciphertexts for this key set. SEAL validates each ciphertext
 * against the parameters on load; all chunks must sit at the same level and scale.
 */
export function loadEnvelope(keys: FheKeySet, value: unknown, maxLength: number): { envelope: FheEnvelope; cts: CipherText[] } {
  const envelope = readFheEnvelope(value, maxLength);
  if (envelope.key_id !== keys.keyId) {
    throw new PayloadError('payload_rejected', `$fhe value is encrypted under another key, not ${keys.keyId}`);
  }
  const cts: CipherText[] = [];
  try {
    for (const b64 of ciphertextsOf(envelope)) {
      const ct = keys.seal.CipherText();
      cts.push(ct);
      const bytes = Buffer.from(b64, 'base64');
      checkCiphertextBlob(bytes);
      try {
        ct.loadArray(keys.context, bytes);
      } catch (cause) {
        if (isWasmAbort(cause)) throw cause;
        throw new PayloadError('payload_rejected', '$fhe ciphertext is corrupted or not for these parameters', { cause });
      }
      if (ct.size < 2 || ct.size > 3) throw new PayloadError('payload_rejected', '$fhe ciphertext has an unexpected size');
    }
    const first = cts[0]!;
    const level = keys.context.getContextData(first.parmsId).chainIndex;
    for (const ct of cts) {
      if (keys.context.getContextData(ct.parmsId).chainIndex !== level || ct.scale !== first.scale) {
        throw new PayloadError('payload_rejected', '$fhe ciphertexts of one value differ in level or scale');
      }
    }
  } catch (e) {
    deleteAll(cts);
    throw e;
  }
  return { envelope, cts };
}

/**
 * Decrypts with the secret key. CKKS has no integrity check, so a corrupted ciphertext, a ciphertext
 * under another secret key, or a result that overflowed its modulus all decrypt to noise of the order
 * of the modulus; any slot beyond what the remaining modulus can represent is therefore rejected.
 */
export function decryptCiphertexts(keys: FheKeySet, cts: readonly CipherText[], length: number): number[] {
  if (!keys.decryptor) throw new PayloadError('payload_rejected', 'the FHE secret key is not available here');
  const values: number[] = [];
  for (let c = 0; c < cts.length; c++) {
    const ct = cts[c]!;
    const bits = keys.context.getContextData(ct.parmsId).totalCoeffModulusBitCount;
    const bound = 2 ** (bits - 1) / ct.scale;
    let plain;
    try {
      plain = keys.decryptor.decrypt(ct);
    } catch (cause) {
      if (isWasmAbort(cause)) throw cause;
      throw new PayloadError('payload_rejected', '$fhe ciphertext failed to decrypt', { cause });
    }
    if (!plain) throw new PayloadError('payload_rejected', '$fhe ciphertext failed to decrypt');
    let slots: ArrayLike<number>;
    try {
      slots = keys.encoder.decode(plain) as Float64Array;
    } finally {
      plain.delete();
    }
    for (let i = 0; i < slots.length; i++) {
      const v = slots[i]!;
      if (!Number.isFinite(v) || Math.abs(v) >= bound) {
        throw new PayloadError('payload_rejected', '$fhe ciphertext decrypts to noise: corrupted, under another key, or overflowed');
      }
    }
    const take = Math.min(CKKS.slots, length - c * CKKS.slots);
    for (let i = 0; i < take; i++) values.push(slots[i]!);
  }
  return values;
}

/** Opens a `$fhe` object to a JSON number (scalar) or array of numbers. */
export function decryptValue(keys: FheKeySet, value: unknown, maxLength: number): number | number[] {
  const { envelope, cts } = loadEnvelope(keys, value, maxLength);
  try {
    const values = decryptCiphertexts(keys, cts, envelope.length);
    return envelope.scalar ? values[0]! : values;
  } finally {
    deleteAll(cts);
  }
}
