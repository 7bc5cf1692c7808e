import { TEST_POLICY } from '../support/extproc-server.js';
import { checkedHeaders } from '../support/extproc-server.js';

/**
 * The policy of the agent-protocol suites: contract section 7's `tools` domain (MCP, requests in
 * plaintext to the server via `tier_scope: response`), the same rules with the default tier scope
 * (`tools_sealed`: the server receives a JWE), and an A2A domain with metadata masking.
 */
export const MCP_DOMAINS = `
    - name: tools
      tier: RETRIEVAL
      tier_scope: response
      allowed_roles: [EXECUTOR, ORCHESTRATOR]
      audit_level: FULL_MESH
      dlp: {action: block, entities: [AWS_ACCESS_KEY]}
      mcp:
        methods: [initialize, notifications/initialized, ping, tools/list, tools/call]
        tools:
          - {name: search_docs, roles: [EXECUTOR, ORCHESTRATOR]}
          - {name: "fs_read_*", roles: [EXECUTOR]}
          - name: transfer_funds
            roles: [EXECUTOR]
            arguments:
              amount: {type: number, max: 1000}
              currency: {enum: [EUR, USD]}
              to_account: {type: string, pattern: "^DE[0-9]{20}$", max_length: 22}
            required: [amount, currency, to_account]
    - name: tools_sealed
      tier: RETRIEVAL
      allowed_roles: [EXECUTOR]
      mcp:
        tools:
          - {name: search_docs, roles: [EXECUTOR]}
    - name: agents
      tier: RETRIEVAL
      tier_scope: response
      allowed_roles: [ORCHESTRATOR, EXECUTOR]
      metadata_masking: true
      dlp: {action: report}
      a2a:
        methods:
          message/send: [ORCHESTRATOR]
          tasks/get: [ORCHESTRATOR, EXECUTOR]
          agent/getAuthenticatedExtendedCard: [ORCHESTRATOR]
    - name: agents_open
      tier: RETRIEVAL
      tier_scope: response
      allowed_roles: [ORCHESTRATOR]
      dlp: {action: report}
      a2a:
        methods:
          message/send: [ORCHESTRATOR]
`;

export const MCP_POLICY = TEST_POLICY.trimEnd() + '\n' + MCP_DOMAINS;

/** A Streamable HTTP POST of a JSON-RPC body, as Check would have let it through. */
export function rpcPost(
  body: string | Buffer,
  opts: { domain?: string; role?: string; accept?: string; contentType?: string; path?: string; method?: string; authority?: string; scheme?: string } = {},
) {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const domain = opts.domain ?? 'tools';
  const route = { method: opts.method ?? 'POST', path: opts.path ?? '/mcp', authority: opts.authority ?? 'tools.agents.svc' };
  return {
    headers: [
      [':method', route.method],
      [':path', route.path],
      [':authority', route.authority],
      [':scheme', opts.scheme ?? 'http'],
      ['content-type', opts.contentType ?? 'application/json'],
      ['accept', opts.accept ?? 'application/json, text/event-stream'],
      ['content-length', String(bytes.length)],
      ...checkedHeaders(domain, route, { role: opts.role ?? 'EXECUTOR', agent: 'agent-exec-1' }),
    ] as Array<[string, string]>,
    body: bytes,
  };
}

export function call(id: unknown, name: string, args: Record<string, unknown> = {}): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
}

export const GOOD_TRANSFER = { amount: 250, currency: 'EUR', to_account: 'DE89370400440532013000' };
