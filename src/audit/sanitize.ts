import type { AuditEvent } from './record.js';

/**
 * The last line of defence before the disk: only the fields AuditEvent declares are copied (a caller
 * that spreads a request object into an event cannot smuggle headers in), `findings` keeps only
 * numeric counts, and a string that looks like a JWS/JWE compact token or a bearer credential is
 * replaced. Returns the clean copy and how many values were replaced, so the sink can log that it
 * happened (never what).
 */
const STRING_FIELDS = ['event', 'decision_id', 'domain', 'tier', 'decision', 'reason', 'agent', 'role', 'target', 'trace_id', 'audit_level', 'payload_sha256', 'rpc_method', 'tool'] as const;

// A field added to AuditEvent must be listed here too, or it would be dropped: this fails to compile
// until it is.
type Covered = (typeof STRING_FIELDS)[number] | 'payload_bytes' | 'findings' | 'rpc_batch' | 'finding_layers';
const everyFieldCovered: [Exclude<keyof AuditEvent, Covered>] extends [never] ? true : false = true;
void everyFieldCovered;

// Compact JWS (3 segments) / JWE (5 segments) starting with a base64url JSON header, or a bearer value.
const CREDENTIAL_RE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.|\bbearer\s+\S{8,}/i;
export const REDACTED = '[redacted]';

const DECLARED: ReadonlySet<string> = new Set<string>([...STRING_FIELDS, 'payload_bytes', 'findings', 'rpc_batch', 'finding_layers']);

/** `ENTITY@layer>layer`: an entity name and layer names, nothing a value could hide in. */
const FINDING_LAYER = /^[A-Z][A-Z0-9_]{0,40}@[a-z0-9>]{1,200}$/;

/**
 * True when `ev` already is what the copy below would produce: only declared members, strings (or
 * null) that look like no credential, a whole `payload_bytes`, no `findings` (their entity names are
 * checked on the copy path). The common case on the hot path, which then skips the copy.
 */
function alreadyClean(ev: Readonly<Record<string, unknown>>): boolean {
  for (const k in ev) {
    if (!DECLARED.has(k)) return false;
    const v = ev[k];
    if (v === undefined || v === null) continue;
    if (k === 'payload_bytes' || k === 'rpc_batch') {
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) return false;
    } else if (k === 'findings' || k === 'finding_layers' || typeof v !== 'string' || CREDENTIAL_RE.test(v)) {
      return false;
    }
  }
  return true;
}

export function sanitizeEvent(ev: AuditEvent): { event: Record<string, unknown>; redacted: number } {
  if (alreadyClean(ev as unknown as Record<string, unknown>)) return { event: ev as unknown as Record<string, unknown>, redacted: 0 };
  const out: Record<string, unknown> = {};
  let redacted = 0;
  const src = ev as unknown as Record<string, unknown>;
  for (const k of STRING_FIELDS) {
    const v = src[k];
    if (v === undefined) continue;
    if (typeof v === 'string' && CREDENTIAL_RE.test(v)) {
      out[k] = REDACTED;
      redacted++;
    } else if (typeof v === 'string' || v === null) {
      out[k] = v;
    } else {
      out[k] = String(v);
    }
  }
  if (typeof ev.payload_bytes === 'number' && Number.isSafeInteger(ev.payload_bytes)) out.payload_bytes = ev.payload_bytes;
  if (typeof ev.rpc_batch === 'number' && Number.isSafeInteger(ev.rpc_batch)) out.rpc_batch = ev.rpc_batch;
  if (ev.findings && typeof ev.findings === 'object') {
    const f: Record<string, number> = {};
    for (const [entity, n] of Object.entries(ev.findings)) {
      if (typeof n === 'number' && Number.isSafeInteger(n) && !CREDENTIAL_RE.test(entity)) f[entity] = n;
    }
    out.findings = f;
  }
  if (Array.isArray(ev.finding_layers)) {
    out.finding_layers = ev.finding_layers.filter((x): x is string => typeof x === 'string' && FINDING_LAYER.test(x));
  }
  return { event: out, redacted };
}
