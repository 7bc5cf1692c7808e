import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Binds what Check decided to the one request it decided on, for ext_proc. ext_proc learns the caller
 * from Check's dynamic metadata when Envoy forwards it, else from the request headers Check set; either
 * way it needs proof that Check made this decision for this request, because:
 * - any mesh workload can open a connection to the gRPC port and send a ProcessingRequest with any
 *   metadata and headers it likes;
 * - Envoy may run ext_proc on routes where ext_authz is off, and there a client's own `x-mesh-*`
 *   headers arrive untouched;
 * - a callee that kept the headers of an earlier request (or an operator reading header access logs)
 *   holds everything Check set.
 * So the MAC covers the decision (id, domain, role, agent) and the request it was made for (the route:
 * `:authority` without port, `:path`, method; and the source principal), and it lives
 * `BINDING_MAX_AGE_MS`. ext_proc recomputes it from the route it actually sees and removes the helper
 * header before the request goes upstream (`CHECK_TO_EXTPROC_HEADERS`), so the callee never holds one.
 *
 * Format: `v2.<issued ms, base36>.<base64url HMAC-SHA256>`. The fields are length-prefixed, so no
 * choice of agent id or path can make two different field lists hash the same input.
 */
export interface BoundFields {
  decisionId: string;
  domain: string;
  role: string;
  agent: string;
  /** `:authority` as `bindingHost` reduces it. */
  host: string;
  /** `:path` exactly as Envoy sent it (query included): ext_authz and ext_proc see the same one. */
  path: string;
  method: string;
  /** The caller's mTLS principal as Envoy reported it; '' when there is none. */
  principal: string;
}

/**
 * Long enough for Check → ext_proc request headers (the same request, milliseconds apart) and a slow
 * upstream before the response phase opens on the same stream (the flow is resolved once, on the
 * first message, so the lifetime bounds only the gap between Check and ext_proc's first message).
 */
export const BINDING_MAX_AGE_MS = 60_000;

/** Request headers that only carry information from Check to ext_proc; ext_proc removes them. */
export const CHECK_TO_EXTPROC_HEADERS: readonly string[] = Object.freeze(['x-mesh-binding']);

/** Dynamic-metadata field that carries the same MAC on the metadata path. */
export const BINDING_METADATA_FIELD = 'binding';

/** Lower-case, without port and without a trailing dot: the same reduction on both sides. */
export function bindingHost(authority: string): string {
  let a = authority.trim().toLowerCase();
  if (a.startsWith('[')) {
    const end = a.indexOf(']');
    a = end > 0 ? a.slice(0, end + 1) : a;
  } else {
    const colon = a.indexOf(':');
    if (colon >= 0) a = a.slice(0, colon);
  }
  return a.endsWith('.') ? a.slice(0, -1) : a;
}

function macInput(issued: string, f: BoundFields): string {
  let s = `v2\n${issued}`;
  for (const v of [f.decisionId, f.domain, f.role, f.agent, f.host, f.method.toUpperCase(), f.principal, f.path]) s += `\n${v.length}:${v}`;
  return s;
}

export function bindDecision(key: Uint8Array, f: BoundFields, nowMs: number): string {
  const issued = Math.floor(nowMs).toString(36);
  // Encoded by the digest itself: no intermediate Buffer on every allow (Check's hot path).
  return `v2.${issued}.${createHmac('sha256', key).update(macInput(issued, f)).digest('base64url')}`;
}

export function verifyBinding(key: Uint8Array, value: string | undefined, f: BoundFields, nowMs: number, maxAgeMs = BINDING_MAX_AGE_MS): boolean {
  if (!value) return false;
  const m = /^v2\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value.trim());
  if (!m) return false;
  const issuedMs = parseInt(m[1]!, 36);
  // Small allowance for clock steps between cluster workers; never a binding from the far future.
  if (!Number.isFinite(issuedMs) || issuedMs > nowMs + 5_000 || nowMs - issuedMs > maxAgeMs) return false;
  const given = Buffer.from(m[2]!, 'base64url');
  const expected = createHmac('sha256', key).update(macInput(m[1]!, f)).digest();
  return given.length === expected.length && timingSafeEqual(given, expected);
}
