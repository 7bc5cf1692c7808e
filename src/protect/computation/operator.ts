import { decodeProtectedHeader } from 'jose';
import type { CompiledPolicy, DomainPolicy } from '../../config/types.js';
import { PayloadError } from '../../errors.js';
import { looksLikeCompactJwe, openForDomain } from '../jwe.js';
import { loadKeyring } from '../keyring.js';
import { defaultOperatorKeyFiles } from './dev-keys.js';
import { openEnvelope } from './mpc.js';
import { loadPrivateKeyFiles } from './private-keys.js';
import { openWithPrivateKeys } from './tee.js';

const encoder = new TextEncoder();

/**
 * `mesh-pep open` for COMPUTATION bodies:
 * - a JWE sealed to an enclave (ECDH-ES+A256KW) → opened with the enclave private key file(s);
 * - a response JWE sealed to the domain key (A256KW / dir) → opened with the domain keyring;
 * - an MPC envelope → every party's bundle opened with the party key files, values reconstructed,
 *   the original JSON document returned.
 * Without `keyFiles`, the dev key files `mesh-pep keys init` writes are used.
 */
export async function openForOperator(body: Uint8Array, opts: { policy: CompiledPolicy; domain: DomainPolicy; keyFiles: readonly string[] }): Promise<Uint8Array> {
  const { policy, domain } = opts;
  const keyFiles = opts.keyFiles.length > 0 ? opts.keyFiles : defaultOperatorKeyFiles(policy, domain);
  const text = new TextDecoder('utf-8').decode(body).trim();
  if (looksLikeCompactJwe(text)) {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(text).alg;
    } catch (cause) {
      throw new PayloadError('payload_rejected', 'body is not a compact JWE', { cause });
    }
    if (alg === 'A256KW' || alg === 'dir') {
      const opened = await openForDomain(text, await loadKeyring(domain.keyringFile), domain.name);
      return opened.plaintext;
    }
    const keys = await loadPrivateKeyFiles(keyFiles);
    const opened = await openWithPrivateKeys(text, keys);
    if (opened.header.mesh_domain !== domain.name) {
      throw new PayloadError('payload_rejected', `JWE belongs to domain ${String(opened.header.mesh_domain)}, not ${domain.name}`);
    }
    return opened.plaintext;
  }
  const keys = await loadPrivateKeyFiles(keyFiles);
  const rebuilt = await openEnvelope(body, keys, domain.name);
  return encoder.encode(JSON.stringify(rebuilt.document));
}
