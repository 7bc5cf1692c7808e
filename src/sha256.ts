import * as crypto from 'node:crypto';

/**
 * SHA-256 of a string, for the per-call hot paths (credential cache keys, audit chain hashes). The
 * one-shot `crypto.hash` (Node ≥ 20.12) costs about half of a Hash object per call; `engines` allows
 * older 20.x, which get createHash. Both give the same digest.
 */
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'hex' | 'base64url') => string }).hash;

export const sha256: (text: string, encoding: 'hex' | 'base64url') => string =
  typeof oneShot === 'function'
    ? (text, encoding) => oneShot('sha256', text, encoding)
    : (text, encoding) => crypto.createHash('sha256').update(text, 'utf8').digest(encoding);
