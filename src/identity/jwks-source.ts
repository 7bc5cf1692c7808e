import { calculateJwkThumbprint, createLocalJWKSet, errors, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';

/** Which issuer key verified a credential: its kid (if the JWK has one) and RFC 7638 thumbprint. */
export interface KeyRef {
  readonly kid: string | undefined;
  readonly thumbprint: string;
}

/** Filled by a key lookup with the key it handed out (the one that then verified the signature). */
export interface KeyUse {
  key?: KeyRef;
}

/** A key lookup that records which key it chose (jwtVerify gets a closure over one `KeyUse`). */
export type KeyLookup = (header: Parameters<JWTVerifyGetKey>[0], token: Parameters<JWTVerifyGetKey>[1], used?: KeyUse) => Promise<VerificationKey>;
type VerificationKey = Awaited<ReturnType<JWTVerifyGetKey>>;

/** One identity per key entry: removing the entry, or changing its kid or material, changes it. */
export function keyRefId(ref: KeyRef): string {
  return `${ref.kid ?? ''}#${ref.thumbprint}`;
}

/**
 * A credential that names no kid while every issuer key has one: refused rather than letting the
 * library pick "the only key that fits", which made a revoked kid verify when the header left it out.
 */
export class MissingKidError extends Error {
  override readonly name = 'MissingKidError';
}

/**
 * One interface for every place issuer keys come from (a file, an http(s) URI). The verifier only asks
 * for a key by protected header; how keys are loaded, cached and refreshed stays behind this interface.
 */
export interface JwksSource {
  /** Resolves the verification key for a JWS protected header; rejects when no key matches. */
  getKey: KeyLookup;
  /** Key ids of the current good set (kid-less keys are not listed). */
  keyIds(): string[];
  /**
   * Called after a new set replaced the previous one with the `keyRefId`s of the keys that disappeared
   * (or whose kid or material changed), kid or not. Cached credentials verified with those keys must be
   * dropped.
   */
  onKeysRemoved(listener: (removed: ReadonlySet<string>) => void): void;
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
  readonly getKey: KeyLookup;
  readonly keyIds: readonly string[];
  /** `keyRefId` of every key in the set. */
  readonly refs: ReadonlySet<string>;
}

interface KeyEntry {
  readonly ref: KeyRef;
  /** jose's lookup over this one key: it applies alg/kty/crv/use/key_ops matching and caches imports. */
  readonly lookup: JWTVerifyGetKey;
}

/**
 * Key selection that knows which key it picked. jose's own set picks "the only key that fits" for a
 * kid-less header and does not say which; revocation and cache invalidation need exactly that.
 */
function recordingLookup(entries: readonly KeyEntry[]): KeyLookup {
  const everyKeyHasKid = entries.length > 0 && entries.every((e) => e.ref.kid !== undefined);
  return async (header, token, used) => {
    const kid = header.kid;
    if (kid === undefined && everyKeyHasKid) throw new MissingKidError('credential header names no "kid", but every issuer key has one');
    const matches: Array<{ ref: KeyRef; key: VerificationKey }> = [];
    let other: unknown;
    for (const e of entries) {
      if (kid !== undefined && e.ref.kid !== kid) continue;
      try {
        matches.push({ ref: e.ref, key: await e.lookup(header, token) });
      } catch (err) {
        if (!(err instanceof errors.JWKSNoMatchingKey)) other ??= err;
      }
    }
    if (matches.length === 1) {
      if (used) used.key = matches[0]!.ref;
      return matches[0]!.key;
    }
    if (matches.length > 1) throw new errors.JWKSMultipleMatchingKeys();
    throw other ?? new errors.JWKSNoMatchingKey();
  };
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
  const entries: KeyEntry[] = [];
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
    let lookup: JWTVerifyGetKey;
    try {
      lookup = createLocalJWKSet({ keys: [jwk] } as JSONWebKeySet);
    } catch (err) {
      throw new Error(`${origin}: keys[${i}]: ${(err as Error).message}`);
    }
    entries.push({ ref: Object.freeze({ kid: jwk.kid, thumbprint }), lookup });
  }
  try {
    createLocalJWKSet(json as JSONWebKeySet); // the set as a whole, as jose would accept it
  } catch (err) {
    throw new Error(`${origin}: ${(err as Error).message}`);
  }
  const keyIds = [...new Set(entries.map((e) => e.ref.kid).filter((k): k is string => k !== undefined))];
  return { getKey: recordingLookup(entries), keyIds, refs: new Set(entries.map((e) => keyRefId(e.ref))) };
}

/** `keyRefId`s of `before` that are not in `after`: removed keys, kid or not. */
export function removedKeys(before: KeySnapshot | undefined, after: KeySnapshot): Set<string> {
  const removed = new Set<string>();
  if (!before) return removed;
  for (const id of before.refs) if (!after.refs.has(id)) removed.add(id);
  return removed;
}

/** Small fan-out used by both sources. */
export class RemovalListeners {
  readonly #listeners: Array<(removed: ReadonlySet<string>) => void> = [];
  add(listener: (removed: ReadonlySet<string>) => void): void {
    this.#listeners.push(listener);
  }
  emit(removed: ReadonlySet<string>): void {
    if (removed.size === 0) return;
    for (const l of this.#listeners) l(removed);
  }
}

/** Error thrown by a source when it has no usable key set at all; mapped to invalid_credential. */
export class JwksUnavailableError extends Error {
  override readonly name = 'JwksUnavailableError';
}
