import { access, mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AuditSettings } from '../config/types.js';
import { MeshError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { canonicalJson, chainedLine, GENESIS_HASH, recordHash } from './canonical.js';
import { readTail, rotatedSiblings } from './chain-files.js';
import type { AuditEvent, AuditRecordOptions, AuditSink } from './record.js';
import { sanitizeEvent } from './sanitize.js';

/** The audit log cannot take the record; FULL_MESH callers deny with `audit_unavailable`. */
export class AuditUnavailableError extends MeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('audit_unavailable', message, options);
  }
}

export interface FileAuditSinkOptions {
  metrics?: Metrics;
  log?: Logger;
  now?: () => number;
  /** Records waiting beyond this are refused at once instead of growing memory while the disk hangs. */
  maxQueue?: number;
}

interface Pending {
  event: Record<string, unknown>;
  ts: string;
  resolve: (() => void) | undefined;
  reject: ((err: Error) => void) | undefined;
}

const HASH_RE = /^[0-9a-f]{64}$/;

/**
 * Hash-chained JSON-lines audit log with group commit.
 *
 * Records are hashed when their group is written, not when they arrive, so a failed write never leaves
 * later records chained to records that are not in the file: the chain head only advances after
 * `fdatasync` succeeds. After a failure the file is truncated back to its last good length and reopened
 * on the next write, which is also how the sink recovers once the disk does.
 */
export class FileAuditSink implements AuditSink {
  private fh: FileHandle | undefined;
  private size = 0;
  private lastHash: string;
  private rotation: number;
  private queue: Pending[] = [];
  private writing = 0;
  private cancelTimer: (() => void) | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private ok = true;
  private lastTsMs = NaN;
  private lastTs = '';

  private constructor(
    private readonly settings: AuditSettings,
    private readonly opts: FileAuditSinkOptions,
    head: string,
    rotation: number,
  ) {
    this.lastHash = head;
    this.rotation = rotation;
    opts.metrics?.auditQueueDepth.collect(() => this.queue.length + this.writing);
  }

  /**
   * Opens (creating if needed, mode 0600 in a 0700 directory) the audit file and continues the chain
   * from its last line, or from the last line of the newest rotated file. A torn last line (a crash
   * mid-write, never acknowledged) is cut off. A last line that is not a valid record is refused:
   * continuing would hide tampering, so the operator must look (`mesh-pep audit verify`).
   */
  static async open(settings: AuditSettings, opts: FileAuditSinkOptions = {}): Promise<FileAuditSink> {
    await mkdir(dirname(settings.file), { recursive: true, mode: 0o700 });
    const rotated = await rotatedSiblings(settings.file);
    const rotation = rotated.length ? rotated[rotated.length - 1]!.n : 0;
    let head = await chainHeadOf(settings.file, opts.log);
    if (head === undefined && rotated.length) head = await chainHeadOf(rotated[rotated.length - 1]!.path, opts.log);
    const sink = new FileAuditSink(settings, opts, head ?? GENESIS_HASH, rotation);
    await sink.reopen();
    return sink;
  }

  get healthy(): boolean {
    return this.ok;
  }

  /** Hash of the last record on disk: anchor it elsewhere to make truncation of the tail evident. */
  get head(): string {
    return this.lastHash;
  }

  record(event: AuditEvent, opts: AuditRecordOptions): Promise<void> {
    if (this.closed) return Promise.reject(new AuditUnavailableError('audit sink is closed'));
    if (this.queue.length >= (this.opts.maxQueue ?? 65536)) {
      this.opts.metrics?.auditRecords.inc({ result: 'refused' });
      return Promise.reject(new AuditUnavailableError('audit queue is full'));
    }
    const ts = this.timestamp(opts.at ?? (this.opts.now ?? Date.now)());
    const { event: clean, redacted } = sanitizeEvent(event);
    if (redacted) this.opts.log?.warn({ decision_id: clean.decision_id, fields: redacted }, 'audit event held a credential-like value; replaced');
    if (!opts.durable) {
      this.queue.push({ event: clean, ts, resolve: undefined, reject: undefined });
      this.schedule();
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ event: clean, ts, resolve, reject });
      this.schedule();
    });
  }

  /** ISO time of `ms`; records arriving in the same millisecond (many, under load) share one string. */
  private timestamp(ms: number): string {
    if (ms !== this.lastTsMs) {
      this.lastTs = new Date(ms).toISOString();
      this.lastTsMs = ms;
    }
    return this.lastTs;
  }

  /** Writes everything queued, then closes the file. Records arriving afterwards are refused. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    if (this.queue.length && !this.flushing) this.startFlush();
    while (this.flushing) await this.flushing;
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
  }

  private schedule(): void {
    if (this.flushing || this.cancelTimer) return;
    const fire = () => {
      this.cancelTimer = undefined;
      this.startFlush();
    };
    // The window lets records of concurrent requests share one fdatasync; records that arrive while
    // one is in flight join the next group without waiting for another window.
    if (this.settings.groupCommitMs > 0) {
      const t = setTimeout(fire, this.settings.groupCommitMs);
      this.cancelTimer = () => clearTimeout(t);
    } else {
      const t = setImmediate(fire);
      this.cancelTimer = () => clearImmediate(t);
    }
  }

  private startFlush(): void {
    this.flushing = this.drain().finally(() => {
      this.flushing = undefined;
      if (this.queue.length) this.schedule();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const group = this.queue;
      this.queue = [];
      this.writing = group.length;
      await this.writeGroup(group);
      this.writing = 0;
    }
  }

  private async writeGroup(group: Pending[]): Promise<void> {
    const metrics = this.opts.metrics;
    let fh: FileHandle | undefined;
    try {
      let prev = this.lastHash;
      let text = '';
      for (const p of group) {
        const { hash, line } = chainedLine(p.event, p.ts, prev);
        text += line + '\n';
        prev = hash;
      }
      const data = Buffer.from(text, 'utf8');
      if (!this.fh) await this.reopen();
      if (this.size > 0 && this.size + data.length > this.settings.maxFileBytes) await this.rotate();
      fh = this.fh!;
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await fh.write(data, off, data.length - off);
        off += bytesWritten;
      }
      const t0 = performance.now();
      await fh.datasync();
      metrics?.auditFsyncSeconds.observe((performance.now() - t0) / 1000);
      this.size += data.length;
      this.lastHash = prev;
      this.ok = true;
      metrics?.auditRecords.inc({ result: 'written' }, group.length);
      for (const p of group) p.resolve?.();
    } catch (cause) {
      this.ok = false;
      metrics?.auditRecords.inc({ result: 'failed' }, group.length);
      // Error code and syscall only: never the records, which the error does not hold anyway.
      const e = cause as NodeJS.ErrnoException;
      this.opts.log?.error(
        { err: { code: e.code, syscall: e.syscall, message: e.message }, records: group.length },
        'audit write failed; records rejected',
      );
      await this.discardFile(fh);
      const err = new AuditUnavailableError(`audit write failed (${e.code ?? e.message})`, { cause });
      for (const p of group) p.reject?.(err);
    }
  }

  /** Cut a partial write back to the last good length and drop the handle so the next group reopens. */
  private async discardFile(fh: FileHandle | undefined): Promise<void> {
    const h = fh ?? this.fh;
    this.fh = undefined;
    if (!h) return;
    await h.truncate(this.size).catch(() => undefined);
    await h.close().catch(() => undefined);
  }

  private async reopen(): Promise<void> {
    const file = this.settings.file;
    // After a failure the disk is the truth: a record that reached it despite the error stays chained.
    const head = await chainHeadOf(file, this.opts.log);
    if (head !== undefined) this.lastHash = head;
    const fh = await open(file, 'a', 0o600);
    try {
      this.size = (await fh.stat()).size;
      if (this.size === 0) await syncDir(file);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.fh = fh;
  }

  private async rotate(): Promise<void> {
    const file = this.settings.file;
    await this.fh?.close();
    this.fh = undefined;
    let n = this.rotation + 1;
    while (await exists(`${file}.${n}`)) n++;
    await rename(file, `${file}.${n}`);
    this.rotation = n;
    this.opts.log?.info({ rotated: `${file}.${n}` }, 'audit file rotated');
    this.size = 0;
    await this.reopen();
  }
}

/**
 * The hash of the last complete line of `path`, after cutting off a torn tail; undefined when the
 * file is missing or empty.
 */
async function chainHeadOf(path: string, log: Logger | undefined): Promise<string | undefined> {
  const tail = await readTail(path);
  if (!tail) return undefined;
  if (tail.completeBytes < tail.size) {
    const fh = await open(path, 'r+');
    try {
      await fh.truncate(tail.completeBytes);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    log?.warn({ file: path, bytes: tail.size - tail.completeBytes }, 'audit file had a torn last line; cut off');
  }
  if (tail.lastLine === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(tail.lastLine);
  } catch {
    parsed = undefined;
  }
  const rec = parsed as Record<string, unknown> | undefined;
  if (rec && typeof rec === 'object' && typeof rec.hash === 'string' && HASH_RE.test(rec.hash)) {
    const { hash, ...rest } = rec;
    if (recordHash(rest) === hash && canonicalJson(rec) === tail.lastLine) return hash;
  }
  throw new AuditUnavailableError(
    `audit file ${path}: last line is not a valid audit record; run \`mesh-pep audit verify ${path}\``,
  );
}

async function syncDir(file: string): Promise<void> {
  // A new file's directory entry is only durable once the directory itself is synced.
  const dh = await open(dirname(file), 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
