/**
 * The one table from deny reason to gRPC status, HTTP status and client-facing message.
 * `http` is the status of a Check deny (contract: 401 for credential problems, 403 otherwise);
 * `payloadHttp` is the status of an ext_proc immediate response (a payload that cannot be processed is
 * a 502 from the proxy's point of view, over-limit bodies 413, an unwritable audit log 503).
 * Deny bodies carry these messages and codes only, never internal error text; the code doubles
 * as the `reason` label of metrics and audit records.
 */
export const REASONS = {
  no_policy: { grpc: 7, http: 403, payloadHttp: 403, message: 'no policy matches this request' },
  missing_credential: { grpc: 16, http: 401, payloadHttp: 401, message: 'a bearer credential is required' },
  invalid_credential: { grpc: 16, http: 401, payloadHttp: 401, message: 'the credential is not valid' },
  expired_credential: { grpc: 16, http: 401, payloadHttp: 401, message: 'the credential has expired' },
  credential_too_old: { grpc: 16, http: 401, payloadHttp: 401, message: 'the credential is older than this domain allows' },
  role_not_allowed: { grpc: 7, http: 403, payloadHttp: 403, message: 'the agent role is not allowed in this domain' },
  attestation_failed: { grpc: 7, http: 403, payloadHttp: 403, message: 'attestation is missing or not trusted' },
  identity_mismatch: { grpc: 7, http: 403, payloadHttp: 403, message: 'the credential is not bound to the calling workload' },
  revoked: { grpc: 7, http: 403, payloadHttp: 403, message: 'the credential or agent has been revoked' },
  zone_denied: { grpc: 7, http: 403, payloadHttp: 403, message: 'calls between these trust zones are not allowed' },
  audit_unavailable: { grpc: 7, http: 403, payloadHttp: 503, message: 'the audit log is unavailable' },
  overloaded: { grpc: 7, http: 403, payloadHttp: 503, message: 'the policy enforcement point is overloaded' },
  dlp_blocked: { grpc: 7, http: 403, payloadHttp: 403, message: 'the payload contains data that may not leave this hop' },
  payload_rejected: { grpc: 7, http: 403, payloadHttp: 502, message: 'the payload cannot be processed for this domain' },
  payload_too_large: { grpc: 7, http: 403, payloadHttp: 413, message: 'the payload exceeds the size limit of this domain' },
  // Agent protocols (contract section 7): an ext_proc or Check denial of a JSON-RPC call answers HTTP 200
  // with a JSON-RPC error for the call's id; `payloadHttp` is the status of a denied notification.
  method_not_allowed: { grpc: 7, http: 403, payloadHttp: 403, message: 'the JSON-RPC method is not allowed for this caller' },
  tool_not_allowed: { grpc: 7, http: 403, payloadHttp: 403, message: 'the tool is not allowed for this caller' },
  arguments_rejected: { grpc: 7, http: 403, payloadHttp: 403, message: 'the tool arguments are not allowed by policy' },
  internal_error: { grpc: 7, http: 403, payloadHttp: 500, message: 'the policy enforcement point failed to process the request' },
} as const satisfies Record<string, { grpc: number; http: number; payloadHttp: number; message: string }>;

export type ReasonCode = keyof typeof REASONS;
/** `ok` is the reason recorded for allows, so metrics and audit always carry a reason label. */
export type DecisionReason = ReasonCode | 'ok';

export const REASON_CODES = Object.freeze(Object.keys(REASONS) as ReasonCode[]);

export function isReasonCode(value: string): value is ReasonCode {
  return Object.prototype.hasOwnProperty.call(REASONS, value);
}

export function denyBody(code: ReasonCode): string {
  return JSON.stringify({ error: REASONS[code].message, reason: code });
}
