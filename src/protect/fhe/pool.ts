import { Worker } from 'node:worker_threads';
import { isReasonCode } from '../../policy/reasons.js';
import { PayloadError } from '../../errors.js';
import type { PayloadResult } from '../tier-handler.js';
import type { FheJob } from './job.js';
import type { JobAnswer, JobMessage } from './thread.js';

/**
 * SEAL work off the event loop (issue 17, finding 4). Encrypting one ciphertext blocks for a few
 * milliseconds and a body may need dozens; on the main thread that delayed every Check and ext_proc
 * message of the process by as much. Jobs go to one SEAL thread, one at a time in arrival order (SEAL
 * itself is single-threaded WASM; a second thread would compete for the same cores as the workers
 * and double the WASM heap). The thread starts on the first job, does not keep the process alive,
 * and is replaced if it dies, failing only the job it was running (`internal_error`, fail closed).
 */
interface Pending {
  id: number;
  job: FheJob;
  resolve: (r: PayloadResult | undefined) => void;
  reject: (e: Error) => void;
}

const THREAD_URL = new URL('./thread.js', import.meta.url);

export class FhePool {
  private worker: Worker | undefined;
  private running: Pending | undefined;
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private started = 0;
  private completed = 0;

  run(job: FheJob): Promise<PayloadResult | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, job, resolve, reject });
      this.pump();
    });
  }

  /** Jobs waiting or running (for metrics and tests). */
  get depth(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  /** How many SEAL threads were started (1 unless one died) and jobs finished, for tests. */
  get stats(): { threadsStarted: number; jobsCompleted: number } {
    return { threadsStarted: this.started, jobsCompleted: this.completed };
  }

  private pump(): void {
    if (this.running || this.queue.length === 0) return;
    const next = this.queue.shift()!;
    this.running = next;
    const w = this.thread();
    // While a job runs the thread keeps the process alive (a CLI waits for its answer).
    w.ref();
    w.postMessage({ id: next.id, job: next.job } satisfies JobMessage);
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    this.started++;
    const w = new Worker(THREAD_URL);
    w.on('message', (a: JobAnswer) => this.settle(a));
    w.on('error', (e: Error) => this.lost(w, e));
    w.on('exit', (code) => this.lost(w, new Error(`SEAL thread exited (${code})`)));
    this.worker = w;
    return w;
  }

  private settle(a: JobAnswer): void {
    const p = this.running;
    if (!p || p.id !== a.id) return;
    this.running = undefined;
    this.completed++;
    if (a.ok) {
      const r = a.result;
      p.resolve(r ? { body: new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.byteLength), contentType: r.contentType, headers: r.headers } : undefined);
    } else {
      p.reject(a.code !== undefined && isReasonCode(a.code) ? new PayloadError(a.code, a.message) : new Error(a.message));
    }
    // Idle: the thread must not keep a CLI (or a test) alive.
    if (this.queue.length === 0) this.worker?.unref();
    this.pump();
  }

  private lost(w: Worker, e: Error): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    const p = this.running;
    this.running = undefined;
    p?.reject(new PayloadError('internal_error', `the FHE engine failed: ${e.message}`));
    this.pump();
  }

  /** Stops the thread (tests, shutdown); queued jobs fail. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    for (const p of this.queue.splice(0)) p.reject(new PayloadError('internal_error', 'the FHE engine was stopped'));
    this.running?.reject(new PayloadError('internal_error', 'the FHE engine was stopped'));
    this.running = undefined;
    await w?.terminate();
  }
}

/** The process's one pool, shared by every FHE domain. */
export const fhePool = new FhePool();
