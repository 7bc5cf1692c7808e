import type { AuditBatchMessage, AuditBatchResult, AuditDoneMessage, AuditHealthMessage } from './ipc-sink.js';
import type { AuditEvent, AuditSink } from './record.js';

/** What the primary needs of one worker's IPC channel; a node:cluster `Worker` is one. */
export interface WorkerChannel {
  send(message: AuditDoneMessage | AuditHealthMessage, callback: (err: Error | null) => void): boolean;
}

/**
 * The cluster primary's end of the audit relay: it appends the records of every worker to the one
 * sink (and so the one hash chain in `audit.file`), in the order each worker sent them, and answers
 * each batch once its durable records are on disk. When the sink's health changes, every worker
 * hears it, so they all turn not ready together when the disk fails and ready again when it recovers.
 *
 * Answers wait for the end of the current turn of the event loop and go out as one message per
 * worker: a group commit settles the batches of many turns of each worker at once, and a message per
 * batch cost a JSON line and a write syscall on both ends for each of them.
 */
export class AuditIpcWriter {
  private readonly workers = new Set<WorkerChannel>();
  private lastHealthy: boolean;
  private readonly answers = new Map<WorkerChannel, AuditBatchResult[]>();
  private answering = false;

  constructor(private readonly sink: AuditSink) {
    this.lastHealthy = sink.healthy;
  }

  get healthy(): boolean {
    return this.sink.healthy;
  }

  /** Handles a message from a worker; false when it is not an audit message (the caller handles it). */
  handle(from: WorkerChannel, message: unknown): boolean {
    const m = message as Partial<AuditBatchMessage> | null;
    if (m?.mesh !== 'audit') return false;
    this.workers.add(from);
    if (typeof m.batch !== 'number' || !Array.isArray(m.records)) return true;
    const batch = m.batch;
    const durable: Promise<void>[] = [];
    const durableIndex: number[] = [];
    m.records.forEach((r, i) => {
      const at = typeof r?.at === 'number' && Number.isFinite(r.at) ? r.at : undefined;
      let written: Promise<void>;
      try {
        if (r === null || typeof r !== 'object' || r.event === null || typeof r.event !== 'object') throw new TypeError('malformed audit record from a worker');
        written = this.sink.record(r.event as AuditEvent, { durable: r.durable === true, at });
      } catch (e) {
        written = Promise.reject(e as Error);
      }
      if (r?.durable === true) {
        durable.push(written);
        durableIndex.push(i);
      } else {
        // A refused non-durable record shows up as unhealthy (readiness) and in the metrics.
        written.catch(() => undefined);
      }
    });
    void Promise.allSettled(durable).then((results) => {
      const failed: number[] = [];
      let error: string | undefined;
      results.forEach((r, k) => {
        if (r.status === 'rejected') {
          failed.push(durableIndex[k]!);
          error ??= (r.reason as Error)?.message;
        }
      });
      this.answer(from, failed.length ? { batch, failed, error } : { batch });
    });
    return true;
  }

  private answer(to: WorkerChannel, result: AuditBatchResult): void {
    const queued = this.answers.get(to);
    if (queued) queued.push(result);
    else this.answers.set(to, [result]);
    if (this.answering) return;
    this.answering = true;
    setImmediate(this.sendAnswers);
  }

  private readonly sendAnswers = (): void => {
    this.answering = false;
    const healthy = this.sink.healthy;
    for (const [to, batches] of this.answers) this.reply(to, { mesh: 'audit-done', batches, healthy });
    this.answers.clear();
    this.announceHealth();
  };

  /** A worker left (exited or was replaced): stop telling it about health. */
  forget(worker: WorkerChannel): void {
    this.workers.delete(worker);
    this.answers.delete(worker);
  }

  private announceHealth(): void {
    const healthy = this.sink.healthy;
    if (healthy === this.lastHealthy) return;
    this.lastHealthy = healthy;
    for (const w of this.workers) this.reply(w, { mesh: 'audit-health', healthy });
  }

  private reply(to: WorkerChannel, message: AuditDoneMessage | AuditHealthMessage): void {
    // With a callback, a send to a worker that just died reports to it instead of emitting 'error'
    // (which would take the primary down); the worker's waiters died with it.
    const forget = (err: Error | null) => {
      if (err) this.workers.delete(to);
    };
    try {
      to.send(message, forget);
    } catch (e) {
      forget(e as Error);
    }
  }
}
