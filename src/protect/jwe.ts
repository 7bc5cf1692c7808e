import { decodeProtectedHeader, type CompactJWEHeaderParameters } from 'jose';
import { PayloadError } from '../errors.js';
import { CompactJweError, CONTENT_ENC, openParsed, parseCompact, sealCompact, sealCompactBytes, type DomainKeyAlg, type RawDomainKey } from './jwe-compact.js';
import type { Keyring, KeyringEntry } from './keyring.js';

/**
 * Policy-bound JWE for a domain: compact serialization, A256GCM content encryption, the key wrapped
 * (A256KW) or used directly (`dir`) under the domain's current key, and the domain named in the
 * protected header so ciphertext of one domain can never be opened as another's.
 *
 * Sealing and opening run synchronously on node:crypto (`jwe-compact.ts`, where the measurement that
 * justifies it is): jose's async WebCrypto path cost 9–25× more per body
 * (`node dist/bench/jwe-seal.js`) and capped ext_proc RETRIEVAL.
 */
export interface SealOptions {
  domain: string;
  /** Original content type, kept inside the protected header (`cty`) so it can be restored. */
  contentType?: string;
  /** Further protected-header members (e.g. an enclave measurement). */
  extraHeader?: Record<string, string>;
}

const encoder = new TextEncoder();

export async function sealForDomain(plaintext: Uint8Array, ring: Keyring, opts: SealOptions): Promise<string> {
  const { key, header } = sealingKey(ring, opts);
  return sealCompact(plaintext, key, header);
}

/** `sealForDomain` as the compact form's ASCII bytes (a body), without the intermediate string. */
export function sealForDomainBytes(plaintext: Uint8Array, ring: Keyring, opts: SealOptions): Buffer {
  const { key, header } = sealingKey(ring, opts);
  return sealCompactBytes(plaintext, key, header);
}

function sealingKey(ring: Keyring, opts: SealOptions): { key: RawDomainKey; header: Record<string, unknown> } {
  const entry = ring.current;
  const key = rawKeyOf(entry);
  const header: Record<string, unknown> = {
    alg: key.alg,
    enc: CONTENT_ENC,
    kid: entry.kid,
    mesh_domain: opts.domain,
    ...(opts.contentType ? { cty: opts.contentType } : {}),
    ...opts.extraHeader,
  };
  return { key, header };
}

/** The entry as the codec needs it; keyring load already refused oct keys that are not 32 bytes. */
function rawKeyOf(entry: KeyringEntry): RawDomainKey {
  if (entry.secret === undefined || (entry.alg !== 'A256KW' && entry.alg !== 'dir')) {
    throw new PayloadError('payload_rejected', `key ${entry.kid} is not a 256-bit A256KW or dir key`);
  }
  return { alg: entry.alg as DomainKeyAlg, secret: entry.secret };
}

export interface Opened {
  plaintext: Uint8Array;
  contentType: string | undefined;
  header: CompactJWEHeaderParameters & Record<string, unknown>;
}

const COMPACT_JWE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** True when the text looks like a compact JWE (five base64url parts); says nothing of its validity. */
export function looksLikeCompactJwe(text: string): boolean {
  return text.length < 64 * 1024 * 1024 && COMPACT_JWE.test(text);
}

/** Reads `mesh_domain` from a compact JWE without decrypting, or undefined when it is not one. */
export function peekDomain(text: string): string | undefined {
  if (!looksLikeCompactJwe(text)) return undefined;
  try {
    const h = decodeProtectedHeader(text) as Record<string, unknown>;
    return typeof h.mesh_domain === 'string' ? h.mesh_domain : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens a domain JWE. Everything that can be checked without the key is checked first — five strict
 * base64url parts, `enc` A256GCM, `alg` A256KW or `dir` and equal to the named key's, no `crit`/`zip`,
 * the domain — so another domain's ciphertext is refused before any decryption is attempted.
 */
export async function openForDomain(compact: string, ring: Keyring, domain: string): Promise<Opened> {
  let jwe: ReturnType<typeof parseCompact>;
  try {
    jwe = parseCompact(compact);
  } catch (cause) {
    throw new PayloadError('payload_rejected', `protected body is not a JWE: ${reason(cause)}`);
  }
  const header = jwe.header;
  if (header.enc !== CONTENT_ENC) throw new PayloadError('payload_rejected', `JWE enc ${shown(header.enc)} is not ${CONTENT_ENC}`);
  if (header.alg !== 'A256KW' && header.alg !== 'dir') throw new PayloadError('payload_rejected', `JWE alg ${shown(header.alg)} is not A256KW or dir`);
  // No extension is understood, so any `crit` must be refused (RFC 7516 §4.1.13); compression is not
  // supported either (jose 6 refuses `zip` too).
  if ('crit' in header) throw new PayloadError('payload_rejected', 'JWE names critical header extensions ("crit"), none is supported');
  if ('zip' in header) throw new PayloadError('payload_rejected', 'JWE is compressed ("zip"), which is not supported');
  if (header.mesh_domain !== domain) {
    throw new PayloadError('payload_rejected', `JWE belongs to domain ${shown(header.mesh_domain)}, not ${domain}`);
  }
  const entry = typeof header.kid === 'string' ? ring.get(header.kid) : undefined;
  if (!entry) throw new PayloadError('payload_rejected', `JWE key id ${shown(header.kid)} is not in the ${domain} keyring`);
  if (entry.alg !== header.alg) throw new PayloadError('payload_rejected', `JWE alg ${header.alg} does not match key ${entry.kid} (${entry.alg})`);
  let plaintext: Buffer;
  try {
    plaintext = openParsed(jwe, rawKeyOf(entry));
  } catch (cause) {
    if (cause instanceof PayloadError) throw cause;
    throw new PayloadError('payload_rejected', reason(cause));
  }
  return {
    plaintext,
    contentType: typeof header.cty === 'string' ? header.cty : undefined,
    header: header as Opened['header'],
  };
}

function reason(cause: unknown): string {
  return cause instanceof CompactJweError ? cause.message : 'JWE failed to decrypt (tampered or wrong key)';
}

/** A header value for an operator's message: quoted and cut short, since the sender chose it. */
function shown(v: unknown): string {
  const s = v === undefined ? 'undefined' : JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}
