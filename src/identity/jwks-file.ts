import { readFile, stat } from 'node:fs/promises';
import {
  JwksUnavailableError,
  parseKeySet,
  RemovalListeners,
  removedKeys,
  type JwksSource,
  type KeyLookup,
  type KeySnapshot,
} from './jwks-source.js';

export interface FileJwksOptions {
  /** Shortest interval between two `stat` calls on use; default 1000 ms. */
  checkIntervalMs?: number;
  /** Why a (re)load failed; the last good set stays in use. */
  onError?: (err: Error) => void;
  /** ms clock, for tests. */
  now?: () => number;
}

/**
 * Issuer keys from a JWK Set file. The file is re-read when its mtime, size or inode changes, checked
 * lazily on use and at most once per interval, so a busy PEP costs one `stat` per second and an idle one
 * nothing. A broken new file never replaces a working set: rotation tools that write in place can be
 * caught half-way, and failing every credential because of that would be an outage we caused.
 */
export class FileJwksSource implements JwksSource {
  readonly path: string;
  readonly #checkIntervalMs: number;
  readonly #onError: (err: Error) => void;
  readonly #now: () => number;
  readonly #listeners = new RemovalListeners();
  #snapshot: KeySnapshot | undefined;
  #stamp = '';
  /** Stamp of a file version that failed to parse, so it is not re-parsed every interval. */
  #badStamp = '';
  #lastCheck = Number.NEGATIVE_INFINITY;
  #lastError: Error | undefined;
  #inflight: Promise<void> | undefined;

  constructor(path: string, opts: FileJwksOptions = {}) {
    this.path = path;
    this.#checkIntervalMs = opts.checkIntervalMs ?? 1000;
    this.#onError = opts.onError ?? (() => {});
    this.#now = opts.now ?? Date.now;
  }

  /** Loads now (also done lazily by the first `getKey`); resolves even on failure, see `lastError`. */
  async refresh(): Promise<void> {
    this.#lastCheck = this.#now();
    this.#inflight ??= this.#reload().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  get lastError(): Error | undefined {
    return this.#lastError;
  }

  getKey: KeyLookup = async (header, token, used) => {
    // Also rate-limits retries while the file is missing or broken: a flood of requests costs one
    // stat per interval, not one per request.
    if (this.#inflight) await this.#inflight;
    else if (this.#now() - this.#lastCheck >= this.#checkIntervalMs) await this.refresh();
    const snapshot = this.#snapshot;
    if (!snapshot) {
      throw new JwksUnavailableError(
        `issuer JWKS file ${this.path} has no usable key set${this.#lastError ? `: ${this.#lastError.message}` : ''}`,
      );
    }
    return snapshot.getKey(header, token, used);
  };

  /** Due at most once per interval: a removed (e.g. compromised) key must not live on in the cache. */
  checkForChanges(): Promise<void> | undefined {
    if (this.#now() - this.#lastCheck < this.#checkIntervalMs) return undefined;
    return this.refresh();
  }

  keyIds(): string[] {
    // Status may be the only caller on an idle PEP; let it notice a rotated file too (next call sees it).
    void this.checkForChanges();
    return [...(this.#snapshot?.keyIds ?? [])];
  }

  onKeysRemoved(listener: (removed: ReadonlySet<string>) => void): void {
    this.#listeners.add(listener);
  }

  close(): void {
    // Nothing to stop: checks are lazy, there are no timers or watchers.
  }

  async #reload(): Promise<void> {
    try {
      const st = await stat(this.path);
      const stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if ((stamp === this.#stamp && this.#snapshot) || stamp === this.#badStamp) return;
      const text = await readFile(this.path, 'utf8');
      let next: KeySnapshot;
      try {
        next = await parseKeySet(text, `issuer JWKS file ${this.path}`);
      } catch (err) {
        this.#badStamp = stamp;
        throw err;
      }
      const removed = removedKeys(this.#snapshot, next);
      this.#snapshot = next;
      this.#stamp = stamp;
      this.#badStamp = '';
      this.#lastError = undefined;
      this.#listeners.emit(removed);
    } catch (err) {
      const error =
        err instanceof Error && err.message.startsWith('issuer JWKS file')
          ? err
          : new Error(`issuer JWKS file ${this.path}: ${(err as Error).message}`, { cause: err });
      // Report each distinct problem once per change, not once per request.
      if (this.#lastError?.message !== error.message) this.#onError(error);
      this.#lastError = error;
    }
  }
}
