import { readFile, stat } from 'node:fs/promises';
import { importJWK, type JWK } from 'jose';
import { PayloadError } from '../errors.js';
import { decodeBase64urlStrict, DOMAIN_KEY_ALGS } from './jwe-compact.js';

/**
 * A domain keyring: a JWK Set on disk. The last key listed encrypts (rotation appends), every listed
 * key decrypts. RETRIEVAL keyrings hold `oct` 256-bit keys (alg A256KW, or `dir`).
 */
export interface KeyringEntry {
  kid: string;
  alg: string;
  jwk: JWK;
  key: Awaited<ReturnType<typeof importJWK>>;
  /**
   * The raw 32-byte secret of an `oct` key (alg A256KW or `dir`), for the synchronous codec in
   * `jwe-compact.ts`; undefined for other key types.
   */
  secret?: Buffer;
}

export class Keyring {
  private readonly byId: ReadonlyMap<string, KeyringEntry>;
  constructor(
    readonly file: string,
    readonly entries: readonly KeyringEntry[],
  ) {
    if (entries.length === 0) throw new PayloadError('payload_rejected', `keyring ${file} holds no keys`);
    this.byId = new Map(entries.map((e) => [e.kid, e]));
  }
  /** The key new ciphertext is made with: the last one listed. */
  get current(): KeyringEntry {
    return this.entries[this.entries.length - 1]!;
  }
  get(kid: string): KeyringEntry | undefined {
    return this.byId.get(kid);
  }
  get kids(): string[] {
    return this.entries.map((e) => e.kid);
  }
}

export async function parseKeyring(file: string, text: string, allowedKty: readonly string[] = ['oct']): Promise<Keyring> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new PayloadError('payload_rejected', `keyring ${file} is not JSON`);
  }
  const keys = (doc as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw new PayloadError('payload_rejected', `keyring ${file} has no "keys" array`);
  const entries: KeyringEntry[] = [];
  for (const raw of keys as JWK[]) {
    if (!raw || typeof raw !== 'object' || typeof raw.kid !== 'string' || !allowedKty.includes(String(raw.kty))) {
      throw new PayloadError('payload_rejected', `keyring ${file} has a key without kid or of a kty other than ${allowedKty.join('/')}`);
    }
    const alg = raw.alg ?? (raw.kty === 'oct' ? 'A256KW' : 'ECDH-ES+A256KW');
    if (raw.kty === 'oct') {
      // Refused here, at load, rather than at the first seal: a short key or an algorithm the domain
      // codec does not implement must never get as far as encrypting a body.
      if (!DOMAIN_KEY_ALGS.includes(alg)) {
        throw new PayloadError('payload_rejected', `keyring ${file}: key ${raw.kid} has alg ${String(alg)}; oct keys must be A256KW or dir`);
      }
      const secret = typeof raw.k === 'string' ? decodeBase64urlStrict(raw.k) : undefined;
      if (secret?.length !== 32) {
        throw new PayloadError('payload_rejected', `keyring ${file}: key ${raw.kid} is not a 256-bit key ("k" must be 32 bytes of base64url)`);
      }
      entries.push({ kid: raw.kid, alg, jwk: raw, key: await importJWK(raw, alg), secret });
      continue;
    }
    entries.push({ kid: raw.kid, alg, jwk: raw, key: await importJWK(raw, alg) });
  }
  return new Keyring(file, entries);
}

/** Keyrings are re-read when the file changes (rotation appends a key), checked at most once a second. */
const cache = new Map<string, { checkedAt: number; mtimeMs: number; ring: Promise<Keyring> }>();

export async function loadKeyring(file: string, allowedKty: readonly string[] = ['oct']): Promise<Keyring> {
  const now = Date.now();
  const hit = cache.get(file);
  if (hit && now - hit.checkedAt < 1000) return hit.ring;
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(file)).mtimeMs;
  } catch {
    cache.delete(file);
    throw new PayloadError('payload_rejected', `keyring ${file} is missing`);
  }
  if (hit && hit.mtimeMs === mtimeMs) {
    hit.checkedAt = now;
    return hit.ring;
  }
  const ring = readFile(file, 'utf8').then((t) => parseKeyring(file, t, allowedKty));
  cache.set(file, { checkedAt: now, mtimeMs, ring });
  ring.catch(() => cache.delete(file));
  return ring;
}
