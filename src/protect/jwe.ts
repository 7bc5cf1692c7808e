import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, type CompactJWEHeaderParameters } from 'jose';
import { PayloadError } from '../errors.js';
import type { Keyring } from './keyring.js';

/**
 * Policy-bound JWE for a domain: compact serialization, A256GCM content encryption, the key wrapped
 * (A256KW) or used directly (`dir`) under the domain's current key, and the domain named in the
 * protected header so ciphertext of one domain can never be opened as another's.
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
  const key = ring.current;
  const header: CompactJWEHeaderParameters & Record<string, unknown> = {
    alg: key.alg === 'dir' ? 'dir' : 'A256KW',
    enc: 'A256GCM',
    kid: key.kid,
    mesh_domain: opts.domain,
    ...(opts.contentType ? { cty: opts.contentType } : {}),
    ...opts.extraHeader,
  };
  return new CompactEncrypt(plaintext).setProtectedHeader(header).encrypt(key.key);
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

export async function openForDomain(compact: string, ring: Keyring, domain: string): Promise<Opened> {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(compact) as Record<string, unknown>;
  } catch (cause) {
    throw new PayloadError('payload_rejected', 'protected body is not a JWE', { cause });
  }
  if (header.mesh_domain !== domain) {
    throw new PayloadError('payload_rejected', `JWE belongs to domain ${String(header.mesh_domain)}, not ${domain}`);
  }
  const entry = typeof header.kid === 'string' ? ring.get(header.kid) : undefined;
  if (!entry) throw new PayloadError('payload_rejected', `JWE key id ${String(header.kid)} is not in the ${domain} keyring`);
  try {
    const { plaintext, protectedHeader } = await compactDecrypt(compact, entry.key, {
      keyManagementAlgorithms: ['A256KW', 'dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    return {
      plaintext,
      contentType: typeof protectedHeader.cty === 'string' ? protectedHeader.cty : undefined,
      header: protectedHeader as Opened['header'],
    };
  } catch (cause) {
    throw new PayloadError('payload_rejected', 'JWE failed to decrypt (tampered or wrong key)', { cause });
  }
}

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}
