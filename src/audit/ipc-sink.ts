import { AuditUnavailableError } from './file-sink.js';
import type { AuditEvent, AuditRecordOptions, AuditSink } from './record.js';

/**
 * The messages between a cluster worker's `IpcAuditSink` and the primary's `AuditIpcWriter`
 * (`ipc-writer.ts`). Records travel in batches (everything recorded in one turn of the worker's event
 * loop); every batch is answered exactly once, once its durable records are on disk. The answers to
 * one worker that are ready in the same turn of the primary's loop (typically every batch of one group
 * commit) share one `audit-done` message.
 */
export interface AuditBatchMessage {
  mesh: 'audit';
  batch: number;
  records: { event: AuditEvent; at: number; durable: boolean }[];
}

export interface AuditBatchResult {
  batch: number;
  /** Indexes (into the batch) of durable records that could not be written; absent when none. */
  failed?: number[];
  error?: string;
}

export interface AuditDoneMessage {
  mesh: 'audit-done';
  batches: AuditBatchResult[];
  /** The primary's sink health after these batches; readiness follows it. */
  healthy: boolean;
}

export interface AuditHealthMessage {
  mesh: 'audit-health';
  healthy: boolean;
}

/** What the worker side needs of its IPC channel; `process` in a cluster worker is one. */
export interface AuditChannel {
  readonly connected: boolean;
  send(message: AuditBatchMessage, callback?: (err: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Queued {
  event: AuditEvent;
  at: number;
  durable: boolean;
  waiter: Waiter | undefined;
}

export interface IpcAuditSinkOptions {
  now?: () => number;
  /** Records waiting for the primary beyond this are refused at once (as the file sink's queue is). */
  maxPending?: number;
}

/**
 * A cluster worker's audit sink: it writes nothing itself but relays every record to the primary, which
 * appends it to the one hash chain in `audit.file` (two processes appending to one chain would fork
 * it). A durable record resolves only when the primary reports it on disk, so a FULL_MESH allow still
 * waits for fdatasync; a worker whose primary is gone refuses records (and turns not ready), so such
 * allows fail closed with `audit_unavailable`.
 */
export class IpcAuditSink implements AuditSink {
  private queue: Queued[] = [];
  private readonly inFlight = new Map<number, (Waiter | undefined)[]>();
  private nextBatch = 1;
  private scheduled = false;
  private ok = true;
  private closed = false;
  private gone = false;
  private pending = 0;
  private idle: (() => void) | undefined;

  constructor(
    private readonly channel: AuditChannel,
    private readonly opts: IpcAuditSinkOptions = {},
  ) {
    channel.on('message', this.onMessage);
    channel.on('disconnect', this.onDisconnect);
  }

  get healthy(): boolean {
    return this.ok && !this.gone;
  }

  record(event: AuditEvent, opts: AuditRecordOptions): Promise<void> {
    if (this.closed) return Promise.reject(new AuditUnavailableError('audit sink is closed'));
    if (this.gone || !this.channel.connected) return Promise.reject(new AuditUnavailableError('the audit writer (cluster primary) is gone'));
    if (this.pending >= (this.opts.maxPending ?? 65536)) return Promise.reject(new AuditUnavailableError('audit queue is full'));
    const at = opts.at ?? (this.opts.now ?? Date.now)();
    this.pending++;
    this.schedule();
    if (!opts.durable) {
      this.queue.push({ event, at, durable: false, waiter: undefined });
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => this.queue.push({ event, at, durable: true, waiter: { resolve, reject } }));
  }

  /** Sends what is queued and waits until the primary has answered every batch. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    if (this.inFlight.size && !this.gone) await new Promise<void>((resolve) => (this.idle = resolve));
    this.channel.off('message', this.onMessage);
    this.channel.off('disconnect', this.onDisconnect);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // One batch per turn of the event loop: records of concurrent calls share one IPC message (and,
    // at the primary, one group commit).
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (!this.queue.length) return;
    const group = this.queue;
    this.queue = [];
    if (this.gone) {
      this.fail(group.map((q) => q.waiter), 'the audit writer (cluster primary) is gone');
      this.pending -= group.length;
      return;
    }
    const batch = this.nextBatch++;
    this.inFlight.set(batch, group.map((q) => q.waiter));
    const message: AuditBatchMessage = { mesh: 'audit', batch, records: group.map((q) => ({ event: q.event, at: q.at, durable: q.durable })) };
    // A failed send settles nothing here: the channel is closing, and 'disconnect' rejects the batch.
    try {
      this.channel.send(message, () => undefined);
    } catch {
      // as above
    }
  }

  private readonly onMessage = (m: unknown): void => {
    const msg = m as Partial<AuditDoneMessage | AuditHealthMessage> | null;
    if (msg?.mesh === 'audit-health' && typeof msg.healthy === 'boolean') {
      this.ok = msg.healthy;
      return;
    }
    if (msg?.mesh !== 'audit-done' || !Array.isArray((msg as Partial<AuditDoneMessage>).batches)) return;
    const done = msg as AuditDoneMessage;
    this.ok = done.healthy;
    for (const result of done.batches) this.settle(result);
    if (this.closed && this.inFlight.size === 0) this.idle?.();
  };

  private settle(result: AuditBatchResult): void {
    const waiters = typeof result?.batch === 'number' ? this.inFlight.get(result.batch) : undefined;
    if (!waiters) return;
    this.inFlight.delete(result.batch);
    this.pending -= waiters.length;
    if (!Array.isArray(result.failed) || result.failed.length === 0) {
      for (const w of waiters) w?.resolve();
      return;
    }
    const failed = new Set(result.failed);
    const err = new AuditUnavailableError(result.error ?? 'audit write failed');
    waiters.forEach((w, i) => (failed.has(i) ? w?.reject(err) : w?.resolve()));
  }

  private readonly onDisconnect = (): void => {
    this.gone = true;
    const why = 'the audit writer (cluster primary) is gone';
    for (const waiters of this.inFlight.values()) {
      this.pending -= waiters.length;
      this.fail(waiters, why);
    }
    this.inFlight.clear();
    this.idle?.();
  };

  private fail(waiters: (Waiter | undefined)[], why: string): void {
    const err = new AuditUnavailableError(why);
    for (const w of waiters) w?.reject(err);
  }
}
