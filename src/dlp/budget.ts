import { performance } from 'node:perf_hooks';

/**
 * The per-body scan budget. Scanning is synchronous (it runs inside the ext_proc handler), so the
 * budget is polled between units of work — each detector over each string, each decoded layer — and
 * once exhausted every further step is skipped and the result is marked `truncated`. A single unit is
 * linear in its input, so the overshoot is bounded by the largest string in the body.
 */
export class ScanBudget {
  private readonly deadline: number;
  private decoded = 0;
  /** Characters handed to detectors since the clock was last read. */
  private sinceClock = 0;
  exhausted = false;

  constructor(budgetMs: number, private readonly maxDecodedChars: number) {
    this.deadline = performance.now() + budgetMs;
    if (budgetMs <= 0) this.exhausted = true;
  }

  /**
   * True (and sticky) once the time budget is spent. `chars` is the size of the work about to start;
   * the clock is read only every CLOCK_EVERY characters, since reading it per small JSON string
   * costs more than scanning the string.
   */
  over(chars = CLOCK_EVERY): boolean {
    if (this.exhausted) return true;
    this.sinceClock += chars;
    if (this.sinceClock >= CLOCK_EVERY) {
      this.sinceClock = 0;
      if (performance.now() > this.deadline) this.exhausted = true;
    }
    return this.exhausted;
  }

  /** Accounts for text produced by decoding (base64, escapes, gzip); false once the cap is hit. */
  spendDecoded(chars: number): boolean {
    this.decoded += chars;
    if (this.decoded > this.maxDecodedChars) this.exhausted = true;
    return !this.exhausted;
  }
}

/** About 0.1 ms of scanning at the target throughput. */
const CLOCK_EVERY = 8192;
