import { evictSecondChance } from '../second-chance.js';
import { sha256 } from '../sha256.js';
import type { VerifiedCredential } from './verifier.js';

export interface CredentialCacheOptions {
  /** Most entries kept; over that, an entry not used since it was last passed over is evicted. */
  maxEntries: number;
  /** Largest max token age over all domains, read on every use so a policy reload applies at once. */
  maxAgeMs: () => number;
  now: () => number;
}

interface Entry {
  readonly cred: VerifiedCredential;
  /** Set by a hit, cleared when eviction passes the entry over once (second chance). */
  used: boolean;
}

/**
 * Verified credentials by token, so an agent calling every few milliseconds pays one signature check
 * per token rather than one per call. Keys are SHA-256 digests: the cache never holds a bearer token
 * that a heap dump could replay. An entry is only good until min(exp, iat + max age), checked against
 * the clock on every hit, so caching never extends a credential's life.
 *
 * Eviction is second chance (`second-chance.ts`), close to LRU, so a hit changes nothing in the Map.
 */
export class CredentialCache {
  readonly #max: number;
  readonly #maxAgeMs: () => number;
  readonly #now: () => number;
  // Insertion order; an entry passed over by eviction is moved to the end.
  readonly #entries = new Map<string, Entry>();

  constructor(opts: CredentialCacheOptions) {
    if (!Number.isInteger(opts.maxEntries) || opts.maxEntries < 0) {
      throw new TypeError('credential cache size must be a non-negative integer');
    }
    this.#max = opts.maxEntries;
    this.#maxAgeMs = opts.maxAgeMs;
    this.#now = opts.now;
  }

  static keyOf(token: string): string {
    return sha256(token, 'base64url');
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached credential for this key if it is still good now; expired entries are dropped. */
  get(key: string): VerifiedCredential | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (this.#goodUntil(entry.cred) <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    entry.used = true;
    return entry.cred;
  }

  /** Stores a credential that just verified; one already past its cache lifetime is not stored. */
  set(key: string, cred: VerifiedCredential): void {
    if (this.#max === 0 || this.#goodUntil(cred) <= this.#now()) return;
    this.#entries.delete(key);
    this.#entries.set(key, { cred, used: false });
    evictSecondChance(this.#entries, this.#max, key);
  }

  invalidate(pred: (c: VerifiedCredential) => boolean): number {
    let n = 0;
    for (const [key, entry] of this.#entries) {
      if (pred(entry.cred)) {
        this.#entries.delete(key);
        n++;
      }
    }
    return n;
  }

  clear(): void {
    this.#entries.clear();
  }

  #goodUntil(cred: VerifiedCredential): number {
    return Math.min(cred.expiresAtMs, cred.issuedAtMs + this.#maxAgeMs());
  }
}
