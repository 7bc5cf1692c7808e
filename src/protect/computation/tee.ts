import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, type CompactJWEHeaderParameters } from 'jose';
import { PayloadError } from '../../errors.js';
import type { PrivateKey } from './private-keys.js';
import { ATTESTATION_MEMBER, KEY_ALG, type RecipientKey } from './recipients.js';

/**
 * TEE sealing: the request body becomes a compact JWE that only the attested enclave can open.
 * ECDH-ES+A256KW derives a fresh wrapping key from an ephemeral key pair (in the `epk` header) and the
 * enclave's public key; A256GCM encrypts the body. The protected header names the key (`kid`), the
 * domain (`mesh_domain`), the measurement the key is bound to (`x-attestation`) and the original
 * content type (`cty`), all authenticated by the GCM tag.
 */
export const ENC = 'A256GCM';

export interface TeeSealOptions {
  domain: string;
  contentType: string | undefined;
}

export type JweHeader = CompactJWEHeaderParameters & Record<string, unknown>;

export async function sealToRecipient(plaintext: Uint8Array, recipient: RecipientKey, header: Record<string, string>): Promise<string> {
  const protectedHeader: JweHeader = { alg: KEY_ALG, enc: ENC, kid: recipient.kid, ...header };
  return new CompactEncrypt(plaintext).setProtectedHeader(protectedHeader).encrypt(recipient.key);
}

export async function sealToEnclave(plaintext: Uint8Array, recipient: RecipientKey, opts: TeeSealOptions): Promise<string> {
  if (recipient.measurement === undefined) throw new PayloadError('attestation_failed', `recipient key ${recipient.kid} names no measurement`);
  return sealToRecipient(plaintext, recipient, {
    mesh_domain: opts.domain,
    [ATTESTATION_MEMBER]: recipient.measurement,
    ...(opts.contentType ? { cty: opts.contentType } : {}),
  });
}

export interface OpenedForRecipient {
  plaintext: Uint8Array;
  header: JweHeader;
  kid: string;
}

/**
 * Opens a JWE sealed to one of `keys` (the key named by `kid`, else each in turn). Only
 * ECDH-ES+A256KW / A256GCM are accepted, so a forged header cannot downgrade the algorithms.
 */
export async function openWithPrivateKeys(compact: string, keys: readonly PrivateKey[]): Promise<OpenedForRecipient> {
  let header: JweHeader;
  try {
    header = decodeProtectedHeader(compact) as JweHeader;
  } catch (cause) {
    throw new PayloadError('payload_rejected', 'body is not a compact JWE', { cause });
  }
  const named = keys.filter((k) => k.kid === header.kid);
  const candidates = named.length > 0 ? named : keys;
  if (candidates.length === 0) throw new PayloadError('payload_rejected', `no private key given for key id ${String(header.kid)}`);
  for (const k of candidates) {
    try {
      const { plaintext, protectedHeader } = await compactDecrypt(compact, k.key, {
        keyManagementAlgorithms: [KEY_ALG],
        contentEncryptionAlgorithms: [ENC],
      });
      return { plaintext, header: protectedHeader as JweHeader, kid: k.kid };
    } catch {
      // try the next candidate key
    }
  }
  throw new PayloadError('payload_rejected', `JWE for key id ${String(header.kid)} failed to decrypt with the given keys (wrong key or tampered)`);
}
