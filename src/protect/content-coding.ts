import { brotliCompressSync, brotliDecompressSync, deflateSync, gunzipSync, gzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import { PayloadError } from '../errors.js';

/**
 * HTTP content codings (RFC 9110 §8.4): a body with `content-encoding: gzip` (or `deflate`, `br`, or a
 * list applied in order) is decoded before it is checked, scanned or protected, so the leak guard
 * reads what the callee will read. Decoding is capped at the domain's body limit: a small compressed
 * body cannot expand into an unbounded buffer.
 */
export type Coding = 'gzip' | 'deflate' | 'br';

/** The codings named by a `content-encoding` value, in the order they were applied; `identity` drops out. */
export function parseCodings(header: string | undefined): string[] {
  if (!header) return [];
  return header
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
}

function known(c: string): Coding | undefined {
  if (c === 'gzip' || c === 'x-gzip') return 'gzip';
  if (c === 'deflate') return 'deflate';
  if (c === 'br') return 'br';
  return undefined;
}

/** The body could not be decoded as declared (an unknown coding, corrupt data). */
export class UndecodableBody extends PayloadError {
  constructor(detail: string) {
    super('payload_rejected', `body cannot be decoded: ${detail}`);
  }
}

/** Decoding would exceed the body limit. */
export class DecodedBodyTooLarge extends PayloadError {
  constructor() {
    super('payload_too_large', 'decoded body exceeds the domain body limit');
  }
}

function decodeOne(body: Uint8Array, coding: Coding, maxBytes: number): Buffer {
  const opts = { maxOutputLength: maxBytes };
  try {
    if (coding === 'gzip') return gunzipSync(body, opts);
    if (coding === 'br') return brotliDecompressSync(body, opts);
    try {
      return inflateSync(body, opts);
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw err;
      // Some servers send raw DEFLATE under `deflate` (RFC 9110 means zlib); browsers accept both.
      return inflateRawSync(body, opts);
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new DecodedBodyTooLarge();
    throw new UndecodableBody(`not valid ${coding}`);
  }
}

/** Undoes the codings (last applied first). Throws UndecodableBody or DecodedBodyTooLarge. */
export function decodeBody(body: Uint8Array, codings: readonly string[], maxBytes: number): Uint8Array {
  let out: Uint8Array = body;
  for (let i = codings.length - 1; i >= 0; i--) {
    const c = known(codings[i]);
    if (c === undefined) throw new UndecodableBody('unsupported content-encoding');
    out = decodeOne(out, c, maxBytes);
  }
  return out;
}

/** Applies the codings again (after redaction), so the body stays what its headers say. */
export function encodeBody(body: Uint8Array, codings: readonly string[]): Uint8Array {
  let out: Uint8Array = body;
  for (const name of codings) {
    const c = known(name);
    if (c === 'gzip') out = gzipSync(out);
    else if (c === 'deflate') out = deflateSync(out);
    else if (c === 'br') out = brotliCompressSync(out);
    else throw new UndecodableBody('unsupported content-encoding');
  }
  return out;
}
