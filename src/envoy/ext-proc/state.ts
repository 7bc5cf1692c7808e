import type { RecordSplitter } from '../../dlp/stream-records.js';
import type { PayloadScan } from '../../protect/pipeline.js';
import type { TierModule } from '../../protect/registry.js';
import type { BodyBuffer, BodyTally } from './body-buffer.js';
import type { Flow } from './flow.js';

/**
 * Where one direction's body stands. A BUFFERED body is one `receiving` step ending at once; a
 * STREAMED body stays `receiving` across chunks until `end_of_stream`.
 */
export type BodyStage =
  /** The headers carried `end_of_stream`: no body will follow. */
  | { stage: 'absent' }
  /** The headers said a body follows; none has arrived yet. */
  | { stage: 'expected' }
  /** Chunks arrived without `end_of_stream`; each was answered with `clear_body` and is kept here. */
  | { stage: 'receiving'; buffer: BodyBuffer; chunks: number }
  /**
   * A streamed `text/event-stream` or NDJSON response in a leak-guard domain: each chunk's complete
   * records are scanned and released at once, the incomplete tail is carried to the next chunk.
   */
  | { stage: 'streaming'; records: RecordSplitter; tally: BodyTally; findings: Record<string, number>; scan: PayloadScan; redacted: boolean }
  /** Observability mode: chunks are only hashed and counted. */
  | { stage: 'observing'; tally: BodyTally }
  /** The whole body has been answered. */
  | { stage: 'complete' };

/** What every state after the request headers knows. */
export interface Established {
  flow: Flow;
  module: TierModule;
  /** Envoy ignores answers on this stream (`observability_mode`). */
  observe: boolean;
}

/**
 * The ext_proc stream, one HTTP exchange: request headers → request body → response headers →
 * response body, trailers passed through. Any message that does not fit the state is a protocol
 * violation (gRPC INVALID_ARGUMENT), never a guess that could let plaintext through.
 */
export type StreamState =
  | { at: 'start' }
  | (Established & { at: 'request'; contentType: string | undefined; contentEncoding: string | undefined; body: BodyStage })
  | (Established & { at: 'response'; contentType: string | undefined; contentEncoding: string | undefined; body: BodyStage })
  /**
   * The stream began at response headers with no decision from Check and an error status: the local
   * reply of an earlier filter (ext_authz's deny or its `status_on_error`; also Check's 200 JSON-RPC
   * denial of an MCP/A2A call), which Envoy runs through
   * ext_proc's response path too. Passed through unchanged: nothing of a callee is in it.
   */
  | { at: 'local_reply' }
  /** An immediate response was sent: Envoy ignores this stream from now on; late chunks are dropped. */
  | { at: 'finished' };
