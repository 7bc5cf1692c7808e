import { readFile, stat } from 'node:fs/promises';
import { calculateJwkThumbprint, importJWK, type JWK } from 'jose';

/**
 * Public recipient keys: the TEE recipient set (each key naming its enclave measurement in the JWK
 * member `x-attestation`) and each MPC party's JWK Set. Only ECDH-capable public keys are accepted:
 * EC P-256 and OKP X25519. A file that carries private key material (`d`) is refused whole: mesh-pep
 * must never hold a recipient's private key, and a leaked one on the sidecar means the wrong file is
 * deployed.
 */
export const KEY_ALG = 'ECDH-ES+A256KW';
export const ATTESTATION_MEMBER = 'x-attestation';

export interface RecipientKey {
  kid: string;
  /** `EC/P-256` or `OKP/X25519`. */
  type: string;
  /** The enclave measurement the key is bound to (TEE), if the key names one. */
  measurement: string | undefined;
  jwk: JWK;
  key: Awaited<ReturnType<typeof importJWK>>;
}

export class RecipientFileError extends Error {
  override name = 'RecipientFileError';
}

function keyType(jwk: JWK): string | undefined {
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && typeof jwk.x === 'string' && typeof jwk.y === 'string') return 'EC/P-256';
  if (jwk.kty === 'OKP' && jwk.crv === 'X25519' && typeof jwk.x === 'string') return 'OKP/X25519';
  return undefined;
}

export async function parseRecipientSet(file: string, text: string): Promise<RecipientKey[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new RecipientFileError(`recipient key file ${file} is not JSON`);
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new RecipientFileError(`recipient key file ${file} has no "keys" array`);
  const out: RecipientKey[] = [];
  for (const [i, raw] of (keys as unknown[]).entries()) {
    if (!raw || typeof raw !== 'object') throw new RecipientFileError(`recipient key file ${file}: key ${i} is not an object`);
    const jwk = raw as JWK & Record<string, unknown>;
    if ('d' in jwk) throw new RecipientFileError(`recipient key file ${file}: key ${i} holds private key material; deploy public keys only`);
    const type = keyType(jwk);
    if (!type) throw new RecipientFileError(`recipient key file ${file}: key ${i} is not an EC P-256 or OKP X25519 public key`);
    if (jwk.use !== undefined && jwk.use !== 'enc') throw new RecipientFileError(`recipient key file ${file}: key ${i} has use "${String(jwk.use)}", not "enc"`);
    if (jwk.alg !== undefined && !String(jwk.alg).startsWith('ECDH-ES')) throw new RecipientFileError(`recipient key file ${file}: key ${i} has alg ${String(jwk.alg)}, not ECDH-ES*`);
    const m = jwk[ATTESTATION_MEMBER];
    if (m !== undefined && typeof m !== 'string') throw new RecipientFileError(`recipient key file ${file}: key ${i} has a non-string ${ATTESTATION_MEMBER}`);
    const publicJwk: JWK = type === 'EC/P-256' ? { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } : { kty: 'OKP', crv: 'X25519', x: jwk.x };
    let key;
    try {
      key = await importJWK(publicJwk, KEY_ALG);
    } catch (cause) {
      throw new RecipientFileError(`recipient key file ${file}: key ${i} cannot be imported`, { cause });
    }
    const kid = typeof jwk.kid === 'string' && jwk.kid.length > 0 ? jwk.kid : await calculateJwkThumbprint(publicJwk);
    out.push({ kid, type, measurement: m, jwk, key });
  }
  return out;
}

/** Re-read when the file changes (rotation appends a key), checked at most once a second. */
const cache = new Map<string, { checkedAt: number; mtimeMs: number; keys: Promise<RecipientKey[]> }>();

export async function loadRecipientSet(file: string): Promise<RecipientKey[]> {
  const now = Date.now();
  const hit = cache.get(file);
  if (hit && now - hit.checkedAt < 1000) return hit.keys;
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(file)).mtimeMs;
  } catch {
    cache.delete(file);
    throw new RecipientFileError(`recipient key file ${file} is missing or unreadable`);
  }
  if (hit && hit.mtimeMs === mtimeMs) {
    hit.checkedAt = now;
    return hit.keys;
  }
  const keys = readFile(file, 'utf8').then(
    (t) => parseRecipientSet(file, t),
    (cause: unknown) => {
      throw new RecipientFileError(`recipient key file ${file} is missing or unreadable`, { cause });
    },
  );
  cache.set(file, { checkedAt: now, mtimeMs, keys });
  keys.catch(() => cache.delete(file));
  return keys;
}

/** The key new data is sealed to: the last listed key whose measurement is trusted. */
export function chooseTrusted(keys: readonly RecipientKey[], trusted: ReadonlySet<string>): RecipientKey | undefined {
  for (let i = keys.length - 1; i >= 0; i--) {
    const k = keys[i]!;
    if (k.measurement !== undefined && trusted.has(k.measurement)) return k;
  }
  return undefined;
}
