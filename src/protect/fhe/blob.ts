import { PayloadError } from '../../errors.js';

/**
 * A pre-flight check of untrusted SEAL ciphertext bytes before SEAL sees them. Corrupted size fields
 * can make SEAL's WASM allocate without bound and abort, which leaves the instance unusable; the
 * header fields that drive allocation are therefore checked here first.
 *
 * SEAL 4.1 header (16 bytes, little-endian): magic 0xA15E, header size 0x10, version 4.1,
 * compression mode (2 = zstd, the only one mesh-pep writes), two reserved zero bytes, uint64 total
 * size. Then a zstd frame (magic 0xFD2FB528) whose header declares the decompressed size.
 */
const SEAL_MAGIC = 0xa15e;
const ZSTD_MAGIC = 0xfd2fb528;
const COMPR_ZSTD = 2;
/** A 3-component ciphertext at the first level: 3 polys x 3 primes x 8192 coefficients x 8 bytes, plus metadata. */
export const MAX_DECOMPRESSED_BYTES = 3 * 3 * 8192 * 8 + 4096;

function reject(why: string): never {
  throw new PayloadError('payload_rejected', `$fhe ciphertext is corrupted (${why})`);
}

export function checkCiphertextBlob(b: Uint8Array): void {
  if (b.length < 16 + 6) reject('too short');
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (view.getUint16(0, true) !== SEAL_MAGIC || b[2] !== 0x10) reject('bad SEAL header');
  if (b[3] !== 4 || b[4] !== 1) reject('unsupported SEAL version');
  if (b[5] !== COMPR_ZSTD) reject('not zstd-compressed');
  if (b[6] !== 0 || b[7] !== 0) reject('bad SEAL header');
  if (view.getBigUint64(8, true) !== BigInt(b.length)) reject('size does not match');
  if (view.getUint32(16, true) !== ZSTD_MAGIC) reject('bad zstd frame');
  const descriptor = b[20]!;
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  if ((descriptor >> 3) & 1) reject('bad zstd frame');
  const dictBytes = [0, 1, 2, 4][descriptor & 3]!;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (fcsBytes === 0) reject('zstd frame without content size');
  const at = 21 + (singleSegment ? 0 : 1) + dictBytes;
  if (at + fcsBytes > b.length) reject('too short');
  let size: number;
  if (fcsBytes === 1) size = b[at]!;
  else if (fcsBytes === 2) size = view.getUint16(at, true) + 256;
  else if (fcsBytes === 4) size = view.getUint32(at, true);
  else size = Number(view.getBigUint64(at, true));
  if (size > MAX_DECOMPRESSED_BYTES) reject('declared size too large');
}
