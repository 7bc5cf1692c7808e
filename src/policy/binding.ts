import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Binds the request headers Check sets (`x-mesh-domain`, `x-agent-*`, `x-mesh-decision-id`) to Check's
 * decision with a MAC in `x-mesh-binding`. ext_proc reads the caller from Check's dynamic metadata when
 * Envoy forwards it. Its fallback is these headers, and they are only trustworthy when they went through
 * Check: a route that runs ext_proc without ext_authz, or a client that reaches the gRPC port directly,
 * could otherwise name any domain. With the MAC such headers are refused.
 *
 * Format: `v1.<issued ms, base36>.<base64url HMAC-SHA256 over the fields>`.
 */
export interface BoundFields {
  decisionId: string;
  domain: string;
  role: string;
  agent: string;
}

/** Long enough for a slow upstream's response phase; short enough that a captured header soon expires. */
export const BINDING_MAX_AGE_MS = 15 * 60_000;

function macInput(issued: string, f: BoundFields): string {
  return `v1\n${issued}\n${f.decisionId}\n${f.domain}\n${f.role}\n${f.agent}`;
}

function mac(key: Uint8Array, issued: string, f: BoundFields): Buffer {
  return createHmac('sha256', key).update(macInput(issued, f)).digest();
}

export function bindDecision(key: Uint8Array, f: BoundFields, nowMs: number): string {
  const issued = Math.floor(nowMs).toString(36);
  // Encoded by the digest itself: no intermediate Buffer on every allow (Check's hot path).
  return `v1.${issued}.${createHmac('sha256', key).update(macInput(issued, f)).digest('base64url')}`;
}

export function verifyBinding(key: Uint8Array, header: string | undefined, f: BoundFields, nowMs: number, maxAgeMs = BINDING_MAX_AGE_MS): boolean {
  if (!header) return false;
  const m = /^v1\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/.exec(header.trim());
  if (!m) return false;
  const issuedMs = parseInt(m[1]!, 36);
  if (!Number.isFinite(issuedMs) || issuedMs > nowMs + 60_000 || nowMs - issuedMs > maxAgeMs) return false;
  const given = Buffer.from(m[2]!, 'base64url');
  const expected = mac(key, m[1]!, f);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
