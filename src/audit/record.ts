import type { AuditLevel, Tier } from '../config/types.js';
import type { DecisionReason } from '../policy/reasons.js';

/**
 * One audit event as the core produces it. The audit writer adds `ts`, `prev_hash` and `hash`.
 * Never put a credential, a payload or a topology header value in here.
 */
export interface AuditEvent {
  event: 'authz.check' | 'extproc.request_body' | 'extproc.response_body' | 'extproc.request_headers' | 'extproc.response_headers' | 'dlp.finding' | 'identity.shared';
  decision_id: string;
  domain: string | null;
  tier: Tier | null;
  decision: 'allow' | 'deny' | 'transform' | 'pass';
  reason: DecisionReason;
  /** Agent id, or its pseudonym in masking domains; null when no credential was verified. */
  agent: string | null;
  role: string | null;
  /** Callee host and path; in masking domains the path is a keyed hash. */
  target: string | null;
  trace_id: string | null;
  audit_level: AuditLevel | null;
  payload_sha256?: string;
  payload_bytes?: number;
  /** DLP findings by entity type (counts only, never values). */
  findings?: Readonly<Record<string, number>>;
  /** JSON-RPC method(s) of an MCP/A2A body, comma-joined for a batch; never argument values. */
  rpc_method?: string;
  /** Tool name(s) of `tools/call` messages. */
  tool?: string;
  /** Message count of a JSON-RPC batch. */
  rpc_batch?: number;
  /** Where each finding was, `ENTITY@layer>layer` (e.g. `STRIPE_KEY@json>base64`): names only. */
  finding_layers?: readonly string[];
}

export interface AuditRecord extends AuditEvent {
  ts: string;
  prev_hash: string;
  hash: string;
}

/**
 * Where audit events go. `record` resolves once the event is durable (for FULL_MESH: on disk after
 * fdatasync) and rejects when it cannot be written, so the caller can fail closed.
 */
export interface AuditRecordOptions {
  /** Wait until the record is on disk (FULL_MESH allows). */
  durable: boolean;
  /** When the event happened (ms since the epoch) if not now: records relayed from a cluster worker. */
  at?: number;
}

export interface AuditSink {
  record(event: AuditEvent, opts: AuditRecordOptions): Promise<void>;
  /** False once a write failed and until a write succeeds again; readiness follows it. */
  readonly healthy: boolean;
  close(): Promise<void>;
}
