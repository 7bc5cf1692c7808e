/**
 * Streamed bodies made of records (`text/event-stream` events, NDJSON lines) are scanned record by
 * record as chunks arrive. Chunk boundaries fall anywhere, so the bytes after the last complete record
 * are carried over to the next chunk: a value split across two chunks is scanned whole, and no byte is
 * released while a finding could still span its end. The carry-over is bounded; a record larger than
 * the bound is refused rather than released unscanned.
 */
export type RecordKind = 'sse' | 'ndjson';

export function recordKind(contentType: string | undefined): RecordKind | undefined {
  const type = (contentType ?? '').split(';', 1)[0].trim().toLowerCase();
  if (type === 'text/event-stream') return 'sse';
  if (type === 'application/x-ndjson' || type === 'application/ndjson' || type === 'application/jsonl' || type === 'application/x-jsonlines') return 'ndjson';
  return undefined;
}

/** Default bound on the carried-over bytes: one event or line may be this long. */
export const DEFAULT_MAX_CARRY = 1024 * 1024;

export class RecordOverflow extends Error {
  readonly code = 'payload_too_large';
}

export class RecordSplitter {
  private carry: Buffer = Buffer.alloc(0);

  constructor(
    readonly kind: RecordKind,
    private readonly maxCarry: number = DEFAULT_MAX_CARRY,
  ) {}

  /** Bytes held back, waiting for the end of their record. */
  get pending(): number {
    return this.carry.length;
  }

  /** Appends a chunk; returns the complete records now available (possibly empty). Throws RecordOverflow. */
  push(chunk: Uint8Array): Buffer {
    const all = this.carry.length ? Buffer.concat([this.carry, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    // Only the new bytes (and the few before them that may start a terminator) can hold a new boundary.
    const end = this.lastBoundary(all, Math.max(0, this.carry.length - 3));
    const ready = end === -1 ? Buffer.alloc(0) : all.subarray(0, end);
    this.carry = Buffer.from(end === -1 ? all : all.subarray(end));
    if (this.carry.length > this.maxCarry) throw new RecordOverflow(`a ${this.kind} record exceeds ${this.maxCarry} bytes`);
    return ready;
  }

  /** The stream ended: whatever is held is the last (possibly unterminated) record. */
  end(): Buffer {
    const rest = this.carry;
    this.carry = Buffer.alloc(0);
    return rest;
  }

  /** Offset just past the last record terminator at or after `from`, or -1. */
  private lastBoundary(b: Buffer, from: number): number {
    if (this.kind === 'ndjson') {
      const i = b.lastIndexOf(10);
      return i >= from ? i + 1 : -1;
    }
    // An event ends with a blank line: LF LF, CR CR, or CRLF CRLF (any mix of the three line ends).
    for (let i = b.length - 1; i >= from && i >= 1; i--) {
      const c = b[i];
      if (c !== 10 && c !== 13) continue;
      if (c === 10 && b[i - 1] === 10) return i + 1;
      if (c === 13 && b[i - 1] === 13 && b[i + 1] !== 10) return i + 1;
      if (c === 10 && b[i - 1] === 13 && i >= 3 && b[i - 2] === 10 && b[i - 3] === 13) return i + 1;
      if (c === 10 && b[i - 1] === 13 && i >= 2 && b[i - 2] === 10) return i + 1; // LF CRLF
    }
    return -1;
  }
}
