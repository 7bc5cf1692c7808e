import { createHash, type Hash } from 'node:crypto';

/**
 * Accumulates one body's chunks up to the domain's limit. STREAMED chunks and a BUFFERED whole body
 * go through the same path: a BUFFERED body is simply one chunk with `end_of_stream`.
 */
export class BodyBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  constructor(readonly limit: number) {}

  /** False (and nothing kept) once the body would exceed the limit. */
  add(chunk: Buffer): boolean {
    this.size += chunk.length;
    if (this.size > this.limit) {
      this.chunks.length = 0;
      return false;
    }
    if (chunk.length) this.chunks.push(chunk);
    return true;
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
