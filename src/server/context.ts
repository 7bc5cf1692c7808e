import type { AuditSink } from '../audit/record.js';
import type { BodyBudget } from '../envoy/ext-proc/body-buffer.js';
import type { CompiledPolicy } from '../config/types.js';
import type { Pseudonymizer } from '../masking/pseudonym.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';
import type { Tracing } from '../telemetry/tracing.js';

/**
 * What the gRPC adapters (Check, ext_proc, admin) share in one process. Built by `server/runtime.ts`.
 * `policy()` returns the policy serving right now; a reload swaps it atomically, so a handler that
 * reads it once per request never sees a half-applied policy.
 */
export interface ServerContext {
  policy(): CompiledPolicy;
  audit: AuditSink;
  metrics: Metrics;
  log: Logger;
  pseudonyms: Pseudonymizer;
  /** OpenTelemetry spans (a no-op unless OTEL_* configures an exporter). */
  tracing: Tracing;
  /** The process's bound on body bytes held by ext_proc streams (`server.max_inflight_body_bytes`). */
  bodyBudget?: BodyBudget;
}
