import type { AuditLevel } from '../config/types.js';

export interface AuditChoice {
  record: boolean;
  /** Answer the request only after the record is on disk (fdatasync). */
  durable: boolean;
}

const FULL: AuditChoice = Object.freeze({ record: true, durable: true });
const EGRESS: AuditChoice = Object.freeze({ record: true, durable: true });
const DENIAL: AuditChoice = Object.freeze({ record: true, durable: false });
const SKIP: AuditChoice = Object.freeze({ record: false, durable: false });

/**
 * Which events a domain's audit level records, and whether the answer waits for the disk.
 *
 * FULL_MESH: every hop (each Check, whatever the decision) and every ext_proc payload phase, durable —
 * leaks happen on internal hops, so an allow is never answered before its record is on disk.
 *
 * OUTPUT_ONLY: denials, and hops marked as leaving the mesh (`hop: egress` context extension) whatever
 * their decision. Egress records are durable: they are the ones this level exists for and are few.
 * Denials are written without waiting: a denial lets nothing through, so losing its record in a
 * crash loses no evidence of data moving, and a flood of denied requests cannot make the PEP
 * fsync-bound.
 */
export function shouldAudit(
  level: AuditLevel,
  ev: { decision: 'allow' | 'deny' | 'transform' | 'pass'; egress: boolean },
): AuditChoice {
  if (level === 'FULL_MESH') return FULL;
  if (ev.egress) return EGRESS;
  if (ev.decision === 'deny') return DENIAL;
  return SKIP;
}

/**
 * True when the route marks this hop as leaving the mesh: Envoy route/virtual-host
 * `typed_per_filter_config` for ext_authz with `check_settings.context_extensions: { hop: egress }`
 * (the Check request's `attributes.context_extensions`).
 */
export function isEgressHop(contextExtensions: ReadonlyMap<string, string> | Readonly<Record<string, string>> | undefined): boolean {
  if (!contextExtensions) return false;
  const hop = contextExtensions instanceof Map ? contextExtensions.get('hop') : (contextExtensions as Readonly<Record<string, string>>)['hop'];
  return typeof hop === 'string' && hop.trim().toLowerCase() === 'egress';
}
