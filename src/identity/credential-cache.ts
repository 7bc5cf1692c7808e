import * as crypto from 'node:crypto';
import type { VerifiedCredential } from './verifier.js';

export interface CredentialCacheOptions {
  /** Most entries kept; the least recently used is evicted first. */
  maxEntries: number;
  /** Largest max token age over all domains, read on every use so a policy reload applies at once. */
  maxAgeMs: () => number;
  now: () => number;
}

/**
 * Verified credentials by token, so an agent calling every few milliseconds pays one signature check
 * per token rather than one per call. Keys are SHA-256 digests: the cache never holds a bearer token
 * that a heap dump could replay. An entry is only good until min(exp, iat + max age), checked against
 * the clock on every hit, so caching never extends a credential's life.
 */
export class CredentialCache {
  readonly #max: number;
  readonly #maxAgeMs: () => number;
  readonly #now: () => number;
  // Map iteration order is insertion order: re-inserting on hit makes the first key the LRU one.
  readonly #entries = new Map<string, VerifiedCredential>();

  constructor(opts: CredentialCacheOptions) {
    if (!Number.isInteger(opts.maxEntries) || opts.maxEntries < 0) {
      throw new TypeError('credential cache size must be a non-negative integer');
    }
    this.#max = opts.maxEntries;
    this.#maxAgeMs = opts.maxAgeMs;
    this.#now = opts.now;
  }

  static keyOf(token: string): string {
    return sha256Base64url(token);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached credential for this key if it is still good now; expired entries are dropped. */
  get(key: string): VerifiedCredential | undefined {
    const cred = this.#entries.get(key);
    if (!cred) return undefined;
    this.#entries.delete(key);
    if (this.#goodUntil(cred) <= this.#now()) return undefined;
    this.#entries.set(key, cred);
    return cred;
  }

  /** Stores a credential that just verified; one already past its cache lifetime is not stored. */
  set(key: string, cred: VerifiedCredential): void {
    if (this.#max === 0 || this.#goodUntil(cred) <= this.#now()) return;
    this.#entries.delete(key);
    this.#entries.set(key, cred);
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }

  invalidate(pred: (c: VerifiedCredential) => boolean): number {
    let n = 0;
    for (const [key, cred] of this.#entries) {
      if (pred(cred)) {
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

/**
 * The one-shot `crypto.hash` (Node ≥ 20.12) is about half the cost of a Hash object per call
 * (bench/hot-path.ts, credentials.verify cached); `engines` allows older 20.x, which get createHash.
 * Both give the same digest.
 */
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'base64url') => string }).hash;
const sha256Base64url: (token: string) => string =
  typeof oneShot === 'function'
    ? (token) => oneShot('sha256', token, 'base64url')
    : (token) => crypto.createHash('sha256').update(token).digest('base64url');
