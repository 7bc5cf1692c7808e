import { errors } from 'jose';
import {
  JwksUnavailableError,
  parseKeySet,
  RemovalListeners,
  removedKeys,
  type JwksSource,
  type KeyLookup,
  type KeySnapshot,
} from './jwks-source.js';
import { isLoopbackUrl } from './loopback.js';

export interface RemoteJwksOptions {
  /** Abort a fetch (connect, headers and body) after this long; default 5000 ms. */
  timeoutMs?: number;
  /** Refresh the set in the background once it is this old; default 300000 ms (5 min). */
  maxAgeMs?: number;
  /** Least time between two fetch attempts triggered by traffic (unknown kid, stale set, retry after
   * failure); default 30000 ms. Stops a stream of forged kids from turning the PEP into a flooder. */
  cooldownMs?: number;
  /** Largest JWKS body accepted; default 1 MiB. */
  maxBytes?: number;
  /** Fetch once at construction so the first request does not wait; default true. */
  prefetch?: boolean;
  /** Each distinct fetch problem, once; the last good set stays in use. */
  onError?: (err: Error) => void;
  /** ms clock used for max age and cooldown, for tests. */
  now?: () => number;
}

/**
 * Issuer keys from an http(s) URI: a small state machine in the manner of jose's remote JWKS. One
 * fetch in flight at a time, shared by every waiter; a periodic refresh; a rate-limited refetch when a
 * token names a kid we do not know (how key rotation is picked up between refreshes). The last good
 * set survives an outage, so known kids keep verifying; an unknown kid during an outage fails closed.
 */
export class RemoteJwksSource implements JwksSource {
  readonly uri: string;
  readonly #timeoutMs: number;
  readonly #maxAgeMs: number;
  readonly #cooldownMs: number;
  readonly #maxBytes: number;
  readonly #onError: (err: Error) => void;
  readonly #now: () => number;
  readonly #listeners = new RemovalListeners();
  #snapshot: KeySnapshot | undefined;
  #inflight: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #lastGoodAt = Number.NEGATIVE_INFINITY;

  /** Outcome of the most recent completed fetch; undefined before the first one completes. */
  lastFetchOk: boolean | undefined;
  /** When (ms, injected clock) the most recent fetch completed. */
  lastFetchAt: number | undefined;
  /** Why the most recent fetch failed; cleared by a success. */
  lastError: Error | undefined;
  /** Number of fetches started (for Status and tests). */
  fetchCount = 0;

  constructor(uri: string, opts: RemoteJwksOptions = {}) {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw new TypeError(`issuer jwks_uri is not a URL: ${uri}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new TypeError(`issuer jwks_uri must be http(s), got ${url.protocol}`);
    }
    if (url.protocol === 'http:' && !isLoopbackUrl(url.href)) {
      throw new TypeError('issuer jwks_uri must be https (plain http is accepted only for loopback hosts)');
    }
    this.uri = url.href;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#maxAgeMs = opts.maxAgeMs ?? 300_000;
    this.#cooldownMs = opts.cooldownMs ?? 30_000;
    this.#maxBytes = opts.maxBytes ?? 1 << 20;
    this.#onError = opts.onError ?? (() => {});
    this.#now = opts.now ?? Date.now;
    if (opts.prefetch ?? true) void this.refresh();
  }

  keyIds(): string[] {
    return [...(this.#snapshot?.keyIds ?? [])];
  }

  onKeysRemoved(listener: (removed: ReadonlySet<string>) => void): void {
    this.#listeners.add(listener);
  }

  /** Fetches now, or joins the fetch already in flight. Never rejects: see `lastFetchOk`/`lastError`. */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#inflight ??= this.#fetchOnce().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  getKey: KeyLookup = async (header, token, used) => {
    const now = this.#now();
    const coolingDown = now - this.#lastAttemptAt < this.#cooldownMs;
    if (!this.#snapshot) {
      if (this.#inflight) await this.#inflight;
      else if (!coolingDown) await this.refresh();
      if (!this.#snapshot) {
        throw new JwksUnavailableError(
          `issuer JWKS ${this.uri} not available${this.lastError ? `: ${this.lastError.message}` : ''}`,
        );
      }
    } else if (now - this.#lastGoodAt >= this.#maxAgeMs && !coolingDown) {
      // Stale but usable: serve from the current set and refresh behind the request.
      void this.refresh();
    }
    try {
      return await this.#snapshot.getKey(header, token, used);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      if (this.#inflight) await this.#inflight;
      else if (!coolingDown) await this.refresh();
      else throw err;
      const snapshot = this.#snapshot;
      if (!snapshot) throw err;
      return snapshot.getKey(header, token, used);
    }
  };

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort?.abort(new Error('JWKS source closed'));
  }

  async #fetchOnce(): Promise<void> {
    this.#lastAttemptAt = this.#now();
    this.fetchCount++;
    const abort = new AbortController();
    this.#abort = abort;
    const timeout = setTimeout(
      () => abort.abort(new Error(`timed out after ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    let ok = false;
    try {
      const text = await this.#download(abort.signal);
      const next = await parseKeySet(text, `issuer JWKS ${this.uri}`);
      const removed = removedKeys(this.#snapshot, next);
      this.#snapshot = next;
      this.#lastGoodAt = this.#now();
      this.lastError = undefined;
      ok = true;
      this.#listeners.emit(removed);
    } catch (err) {
      const reason = abort.signal.aborted ? abort.signal.reason : err;
      const message = reason instanceof Error ? reason.message : String(reason);
      const error = message.startsWith('issuer JWKS')
        ? (reason as Error)
        : new Error(`issuer JWKS ${this.uri}: ${message}`, { cause: err });
      if (this.lastError?.message !== error.message) this.#onError(error);
      this.lastError = error;
    } finally {
      clearTimeout(timeout);
      if (this.#abort === abort) this.#abort = undefined;
      this.lastFetchOk = ok;
      this.lastFetchAt = this.#now();
      this.#schedule(ok ? this.#maxAgeMs : Math.min(this.#cooldownMs, this.#maxAgeMs));
    }
  }

  async #download(signal: AbortSignal): Promise<string> {
    // Redirects are refused: the operator named this URI, and following one would let whoever controls
    // a redirect choose our trust anchors.
    const res = await fetch(this.uri, {
      signal,
      redirect: 'error',
      headers: { accept: 'application/jwk-set+json, application/json' },
    });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`issuer JWKS ${this.uri}: HTTP ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > this.#maxBytes) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`issuer JWKS ${this.uri}: body larger than ${this.#maxBytes} bytes`);
    }
    if (!res.body) return '';
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > this.#maxBytes) {
        await reader.cancel().catch(() => {});
        throw new Error(`issuer JWKS ${this.uri}: body larger than ${this.#maxBytes} bytes`);
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    if (this.#timer) clearTimeout(this.#timer);
    // unref: a pending refresh must never keep the process (or a test run) alive.
    this.#timer = setTimeout(() => void this.refresh(), Math.max(delayMs, 1)).unref();
  }
}
