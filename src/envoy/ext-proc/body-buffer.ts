import { createHash, type Hash } from 'node:crypto';

/**
 * The process-wide bound on body bytes held by ext_proc streams at once (`server.max_inflight_body_bytes`).
 * Per-domain `max_body_bytes` bounds one body; without this, 1,024 streams each holding a 64 MiB body
 * (plus the copies made while protecting it) would exhaust the heap before any limit said no.
 */
export class BodyBudget {
  private used = 0;
  constructor(private readonly limit: () => number) {}

  /** Reserves `n` bytes; false (nothing reserved) when that would exceed the budget. */
  take(n: number): boolean {
    if (this.used + n > this.limit()) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }

  /** Bytes reserved right now (for metrics and tests). */
  get inFlight(): number {
    return this.used;
  }
}

export type AddResult = 'ok' | 'too_large' | 'over_budget';

/**
 * Accumulates one body's chunks up to the domain's limit, reserving each chunk from the process's
 * `BodyBudget` when there is one. STREAMED chunks and a BUFFERED whole body go through the same path:
 * a BUFFERED body is simply one chunk with `end_of_stream`. The reservation outlives `take()` (the
 * body is still in memory while it is protected and answered) until `release()`.
 */
export class BodyBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private reserved = 0;
  constructor(
    readonly limit: number,
    private readonly budget?: BodyBudget,
  ) {}

  /** Anything but `ok` keeps nothing (and gives the reservation back). */
  add(chunk: Buffer): AddResult {
    this.size += chunk.length;
    if (this.size > this.limit) {
      this.release();
      return 'too_large';
    }
    if (this.budget && chunk.length) {
      if (!this.budget.take(chunk.length)) {
        this.release();
        return 'over_budget';
      }
      this.reserved += chunk.length;
    }
    if (chunk.length) this.chunks.push(chunk);
    return 'ok';
  }

  /** Drops what is held and returns its bytes to the budget; safe to call more than once. */
  release(): void {
    this.chunks.length = 0;
    if (this.reserved) this.budget?.give(this.reserved);
    this.reserved = 0;
  }

  get bytes(): number {
    return this.size;
  }

  take(): Buffer {
    const whole = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks.length = 0;
    return whole;
  }
}

/** In observability mode nothing is kept: the body is only hashed and counted for the audit. */
export class BodyTally {
  private readonly hash: Hash = createHash('sha256');
  private size = 0;
  add(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }
  digest(): { sha256: string; bytes: number } {
    return { sha256: this.hash.digest('hex'), bytes: this.size };
  }
}
