import { calculateJwkThumbprint, createLocalJWKSet, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';

/**
 * One interface for every place issuer keys come from (a file, an http(s) URI). The verifier only asks
 * for a key by protected header; how keys are loaded, cached and refreshed stays behind this interface.
 */
export interface JwksSource {
  /** Resolves the verification key for a JWS protected header; rejects when no key matches. */
  getKey: JWTVerifyGetKey;
  /** Key ids of the current good set (kid-less keys are not listed). */
  keyIds(): string[];
  /**
   * Called after a new set replaced the previous one with the kids whose key material disappeared or
   * changed; `undefined` stands for "some kid-less key". Cached credentials verified with those keys
   * must be dropped.
   */
  onKeysRemoved(listener: (removed: ReadonlySet<string | undefined>) => void): void;
  /**
   * Gives the source a chance to notice changes on a cache hit (where no key is looked up). Returns a
   * promise only when a check is due and worth waiting for, so the hit path stays synchronous-fast.
   */
  checkForChanges?(): Promise<void> | undefined;
  close(): void;
}

/** Parameters that only private (or symmetric) JWKs carry. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;

/** A parsed, validated key set plus what we need to notice removed keys. */
export interface KeySnapshot {
  readonly getKey: JWTVerifyGetKey;
  readonly keyIds: readonly string[];
  /** kid (or undefined) -> sorted thumbprints of the keys carrying it. */
  readonly fingerprints: ReadonlyMap<string | undefined, string>;
}

/**
 * Parses issuer key-set JSON text. Throws a plain Error naming the problem (never the key material):
 * the caller keeps its last good set and reports why.
 */
export async function parseKeySet(text: string, origin: string): Promise<KeySnapshot> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${origin}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { keys?: unknown }).keys)) {
    throw new Error(`${origin}: not a JWK Set (expected an object with a "keys" array)`);
  }
  const keys = (json as { keys: unknown[] }).keys;
  const byKid = new Map<string | undefined, string[]>();
  for (const [i, key] of keys.entries()) {
    if (typeof key !== 'object' || key === null || typeof (key as JWK).kty !== 'string') {
      throw new Error(`${origin}: keys[${i}] is not a JWK (no "kty")`);
    }
    const jwk = key as JWK;
    // An issuer key set is public by definition; private material here is a publishing mistake that
    // must be fixed at the source, not silently tolerated.
    const leaked = PRIVATE_MEMBERS.filter((m) => m in jwk);
    if (leaked.length > 0) {
      throw new Error(`${origin}: keys[${i}] contains private or symmetric key material (${leaked.join(', ')})`);
    }
    if (jwk.kid !== undefined && typeof jwk.kid !== 'string') {
      throw new Error(`${origin}: keys[${i}].kid is not a string`);
    }
    let thumbprint: string;
    try {
      thumbprint = await calculateJwkThumbprint(jwk);
    } catch (err) {
      throw new Error(`${origin}: keys[${i}] is malformed (${(err as Error).message})`);
    }
    const list = byKid.get(jwk.kid) ?? [];
    list.push(thumbprint);
    byKid.set(jwk.kid, list);
  }
  let getKey: JWTVerifyGetKey;
  try {
    getKey = createLocalJWKSet(json as JSONWebKeySet);
  } catch (err) {
    throw new Error(`${origin}: ${(err as Error).message}`);
  }
  const fingerprints = new Map<string | undefined, string>();
  for (const [kid, prints] of byKid) fingerprints.set(kid, prints.sort().join(','));
  const keyIds = [...byKid.keys()].filter((k): k is string => k !== undefined);
  return { getKey, keyIds, fingerprints };
}

/** Kids of `before` whose keys are gone or different in `after`. */
export function removedKeys(before: KeySnapshot | undefined, after: KeySnapshot): Set<string | undefined> {
  const removed = new Set<string | undefined>();
  if (!before) return removed;
  for (const [kid, print] of before.fingerprints) {
    if (after.fingerprints.get(kid) !== print) removed.add(kid);
  }
  return removed;
}

/** Small fan-out used by both sources. */
export class RemovalListeners {
  readonly #listeners: Array<(removed: ReadonlySet<string | undefined>) => void> = [];
  add(listener: (removed: ReadonlySet<string | undefined>) => void): void {
    this.#listeners.push(listener);
  }
  emit(removed: ReadonlySet<string | undefined>): void {
    if (removed.size === 0) return;
    for (const l of this.#listeners) l(removed);
  }
}

/** Error thrown by a source when it has no usable key set at all; mapped to invalid_credential. */
export class JwksUnavailableError extends Error {
  override readonly name = 'JwksUnavailableError';
}
