/**
 * The plain request the core decides on. The ext_authz adapter builds it from a CheckRequest; the
 * library API builds it from an ExchangeRequest. No protobuf type crosses this line.
 */
export interface RequestAttributes {
  method: string;
  path: string;
  /** `:authority` (or `host`), lower-case, without a port. */
  host: string;
  /** Request headers with lower-case names; repeated headers are joined with ", " as Envoy does. */
  headers: ReadonlyMap<string, string>;
  /** The caller's mTLS identity as Envoy saw it (a SPIFFE URI under Istio). */
  sourcePrincipal: string | undefined;
  /** The callee's mTLS identity (its trust zone); optional for callers that build requests by hand. */
  destinationPrincipal?: string | undefined;
  /** Per-route settings from the operator (`domain`, `hop`, ...). Never from the client. */
  contextExtensions: Readonly<Record<string, string>>;
  /** Trace id of the request, when known (for the audit record). */
  traceId: string | undefined;
  /** The whole request body when Envoy sent it (`with_request_body`, not truncated): agent-protocol rules. */
  body?: Uint8Array | undefined;
  /** Method, tool and raw id from Envoy's MCP filter (`envoy.filters.http.mcp` dynamic metadata). */
  mcpFilter?: { method: string; tool: string | undefined; rawId: string | undefined } | undefined;
}
