import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';

/**
 * The one compact JWE shape domain keyrings use — `alg` A256KW (RFC 3394 key wrap) or `dir`, `enc`
 * A256GCM — built and opened with synchronous node:crypto primitives; no cipher is implemented here.
 *
 * Why not jose's CompactEncrypt/compactDecrypt (still used for COMPUTATION's ECDH-ES): they run every
 * AES-KW and AES-GCM step as an async WebCrypto job on libuv's thread pool and base64url-encode in
 * JavaScript. `node dist/bench/jwe-seal.js` on this 2-core machine (2026-11-28): sealing a 4 KiB body
 * cost 139–214 µs with jose against 19–29 µs synchronously, 64 KiB 811–987 µs against 42–114 µs; the
 * seal was most of what ext_proc RETRIEVAL added per body (37 MB/s at 64 KiB, target 150 MB/s).
 * With this codec the same bench measures sealForDomain at 17–21 µs (4 KiB) and 31–34 µs (64 KiB),
 * openForDomain at 14–19 µs and 31–39 µs (jose compactDecrypt: 159–172 µs and 406–501 µs).
 * The wire format is the same RFC 7516 compact JWE: jose opens what this seals and the other way round
 * (test/protect/jwe.test.ts).
 */
export type DomainKeyAlg = 'A256KW' | 'dir';
export const DOMAIN_KEY_ALGS: readonly string[] = ['A256KW', 'dir'];
export const CONTENT_ENC = 'A256GCM';

/** RFC 3394 §2.2.3.1 default initial value; the unwrap checks it (integrity of the wrapped key). */
const AES_KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
const CEK_BYTES = 32;
const WRAPPED_CEK_BYTES = CEK_BYTES + 8;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface RawDomainKey {
  alg: DomainKeyAlg;
  /** 32 bytes: the key-encryption key (A256KW) or the content-encryption key itself (`dir`). */
  secret: Buffer;
}

/**
 * Random CEKs and IVs are cut from a 4 KiB block filled by one `randomFillSync` call: two
 * `randomBytes` calls per seal cost ~4.5 µs here against ~0.2 µs from the block. A used block is
 * dropped, never refilled, so no slice handed out is ever overwritten; what remains of it is the
 * same CSPRNG output `randomBytes` would have returned (node's own randomUUID caches the same way).
 */
const RANDOM_BLOCK_BYTES = 4096;
let randomBlock = Buffer.alloc(0);
let randomOffset = 0;

function freshRandom(n: number): Buffer {
  if (randomOffset + n > randomBlock.length) {
    randomBlock = randomFillSync(Buffer.allocUnsafeSlow(RANDOM_BLOCK_BYTES));
    randomOffset = 0;
  }
  const out = randomBlock.subarray(randomOffset, randomOffset + n);
  randomOffset += n;
  return out;
}

interface SealedParts {
  headerPart: string;
  encryptedKeyPart: string;
  ivPart: string;
  ciphertext: Buffer;
  tagPart: string;
}

function seal(plaintext: Uint8Array, key: RawDomainKey, protectedHeader: Readonly<Record<string, unknown>>): SealedParts {
  const headerPart = Buffer.from(JSON.stringify(protectedHeader), 'utf8').toString('base64url');
  let cek: Buffer;
  let encryptedKeyPart = '';
  if (key.alg === 'dir') {
    cek = key.secret;
  } else {
    cek = freshRandom(CEK_BYTES);
    const wrap = createCipheriv('id-aes256-wrap', key.secret, AES_KW_IV);
    encryptedKeyPart = Buffer.concat([wrap.update(cek), wrap.final()]).toString('base64url');
  }
  // 96-bit random IV per message, as RFC 7518 §5.3 and jose do; for `dir` this bounds one key to
  // well under 2^32 messages (NIST SP 800-38D §8.3), which rotation (`mesh-pep keys rotate`) serves.
  const iv = freshRandom(IV_BYTES);
  const gcm = createCipheriv('aes-256-gcm', cek, iv, { authTagLength: TAG_BYTES });
  gcm.setAAD(Buffer.from(headerPart, 'latin1'));
  const head = gcm.update(plaintext);
  const tail = gcm.final();
  const ciphertext = tail.length === 0 ? head : Buffer.concat([head, tail]);
  return { headerPart, encryptedKeyPart, ivPart: iv.toString('base64url'), ciphertext, tagPart: gcm.getAuthTag().toString('base64url') };
}

/**
 * Seals `plaintext` under `key`. `protectedHeader` is serialized once; its base64url form is both the
 * first part and, as ASCII, the GCM additional data, so every header member is authenticated.
 */
export function sealCompact(plaintext: Uint8Array, key: RawDomainKey, protectedHeader: Readonly<Record<string, unknown>>): string {
  const p = seal(plaintext, key, protectedHeader);
  return `${p.headerPart}.${p.encryptedKeyPart}.${p.ivPart}.${p.ciphertext.toString('base64url')}.${p.tagPart}`;
}

/**
 * `sealCompact` as the ASCII bytes of the compact form, for a body: written straight into one buffer
 * of the exact size. Going through the string and a TextEncoder cost a flattened copy of the ~87 KB
 * text on the JS heap and another buffer per 64 KiB body, garbage that made up much of the ext_proc
 * RETRIEVAL server's collection work.
 */
export function sealCompactBytes(plaintext: Uint8Array, key: RawDomainKey, protectedHeader: Readonly<Record<string, unknown>>): Buffer {
  const p = seal(plaintext, key, protectedHeader);
  const ciphertextPart = p.ciphertext.toString('base64url');
  const out = Buffer.allocUnsafe(p.headerPart.length + p.encryptedKeyPart.length + p.ivPart.length + ciphertextPart.length + p.tagPart.length + 4);
  let at = 0;
  for (const [i, text] of [p.headerPart, p.encryptedKeyPart, p.ivPart, ciphertextPart, p.tagPart].entries()) {
    if (i > 0) out[at++] = 0x2e; // '.'
    at += out.write(text, at, 'latin1');
  }
  return out;
}

/** The five parts of a compact JWE, decoded strictly; the header is a parsed JSON object. */
export interface ParsedCompact {
  headerPart: string;
  header: Record<string, unknown>;
  encryptedKey: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** Why a compact JWE was refused; never carries plaintext or key material. */
export class CompactJweError extends Error {}

const B64U_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Strict unpadded base64url (RFC 7515 §2): only `A–Z a–z 0–9 - _`, no padding, no whitespace, and
 * zero unused bits in the last character, so each byte string has exactly one accepted encoding.
 *
 * Node's decoder is lenient (it skips unknown characters and also takes `+` `/` and `=`), so instead
 * of a character-class regex over the whole part (~44 µs for a 64 KiB body here) the decoded length is
 * checked: every skipped or padding character makes the output shorter than ⌊3n/4⌋ bytes, and `+` `/`
 * (which would decode) are looked for directly. Together ~20 µs for 64 KiB, most of it the decode.
 */
export function decodeBase64urlStrict(part: string): Buffer | undefined {
  const n = part.length;
  const rem = n % 4;
  if (rem === 1) return undefined;
  if (part.indexOf('+') !== -1 || part.indexOf('/') !== -1) return undefined;
  const out = Buffer.from(part, 'base64url');
  if (out.length !== Math.floor((n * 3) / 4)) return undefined;
  if (rem !== 0) {
    const last = B64U_ALPHABET.indexOf(part[n - 1]!);
    if (last < 0 || (last & (rem === 2 ? 0x0f : 0x03)) !== 0) return undefined;
  }
  return out;
}

function part(text: string, name: string): Buffer {
  const bytes = decodeBase64urlStrict(text);
  if (bytes === undefined) throw new CompactJweError(`JWE ${name} is not base64url`);
  return bytes;
}

/** Splits and decodes a compact JWE: exactly five base64url parts, a JSON-object protected header. */
export function parseCompact(compact: string): ParsedCompact {
  const parts = compact.split('.');
  if (parts.length !== 5) throw new CompactJweError(`a compact JWE has 5 parts, this has ${parts.length}`);
  const [headerPart, ekPart, ivPart, ctPart, tagPart] = parts as [string, string, string, string, string];
  if (headerPart === '') throw new CompactJweError('JWE protected header is empty');
  let header: unknown;
  try {
    header = JSON.parse(strictUtf8.decode(part(headerPart, 'protected header')));
  } catch (cause) {
    if (cause instanceof CompactJweError) throw cause;
    throw new CompactJweError('JWE protected header is not UTF-8 JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new CompactJweError('JWE protected header is not a JSON object');
  return {
    headerPart,
    header: header as Record<string, unknown>,
    encryptedKey: part(ekPart, 'encrypted key'),
    iv: part(ivPart, 'initialization vector'),
    ciphertext: part(ctPart, 'ciphertext'),
    tag: part(tagPart, 'authentication tag'),
  };
}

/**
 * Decrypts a parsed JWE whose header the caller has already checked (alg matching `key.alg`, enc,
 * domain, kid). Any failure — wrong length, key unwrap integrity check, GCM tag — is a CompactJweError
 * that does not say which secret-dependent step failed.
 */
export function openParsed(jwe: ParsedCompact, key: RawDomainKey): Buffer {
  if (jwe.iv.length !== IV_BYTES) throw new CompactJweError(`JWE initialization vector is ${jwe.iv.length} bytes, not ${IV_BYTES}`);
  if (jwe.tag.length !== TAG_BYTES) throw new CompactJweError(`JWE authentication tag is ${jwe.tag.length} bytes, not ${TAG_BYTES}`);
  let cek: Buffer;
  if (key.alg === 'dir') {
    if (jwe.encryptedKey.length !== 0) throw new CompactJweError('JWE with alg "dir" must have an empty encrypted key');
    cek = key.secret;
  } else {
    if (jwe.encryptedKey.length !== WRAPPED_CEK_BYTES) throw new CompactJweError(`JWE encrypted key is ${jwe.encryptedKey.length} bytes, not ${WRAPPED_CEK_BYTES}`);
    try {
      const unwrap = createDecipheriv('id-aes256-wrap', key.secret, AES_KW_IV);
      cek = Buffer.concat([unwrap.update(jwe.encryptedKey), unwrap.final()]);
    } catch {
      throw new CompactJweError('JWE failed to decrypt (tampered or wrong key)');
    }
  }
  try {
    const gcm = createDecipheriv('aes-256-gcm', cek, jwe.iv, { authTagLength: TAG_BYTES });
    gcm.setAAD(Buffer.from(jwe.headerPart, 'latin1'));
    gcm.setAuthTag(jwe.tag);
    const head = gcm.update(jwe.ciphertext);
    const tail = gcm.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    throw new CompactJweError('JWE failed to decrypt (tampered or wrong key)');
  }
}
