/**
 * A small MCP server (Streamable HTTP, protocol 2025-06-18) used by the demo and the tests as the
 * callee behind the PEP: `initialize`, `tools/list` and `tools/call` over one POST endpoint, answering
 * `application/json` or, when the client prefers it, a `text/event-stream` with one event per message.
 * It is a plain function from request to response, so it runs behind the ext_proc peer and behind a
 * real Envoy (wrapped in node:http) alike. It records what it received, so a test can prove a denied
 * call never reached it.
 */
export interface McpHttpRequest {
  headers: Array<[string, string]>;
  body: Buffer;
}

export interface McpHttpResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

export const DEMO_TOOLS = [
  { name: 'search_docs', description: 'Full-text search over the team docs', inputSchema: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] } },
  { name: 'fs_read_file', description: 'Read a file from the workspace', inputSchema: { type: 'object', properties: { path: { type: 'string' } } } },
  {
    name: 'transfer_funds',
    description: 'Move money between accounts',
    inputSchema: {
      type: 'object',
      properties: { amount: { type: 'number' }, currency: { type: 'string' }, to_account: { type: 'string' } },
      required: ['amount', 'currency', 'to_account'],
    },
  },
  { name: 'shell_exec', description: 'Run a shell command on the server', inputSchema: { type: 'object', properties: { cmd: { type: 'string' } } } },
] as const;

type Json = Record<string, unknown>;

function answer(msg: Json): Json | undefined {
  if (!('id' in msg) || typeof msg['method'] !== 'string') return undefined;
  const id = msg['id'];
  switch (msg['method']) {
    case 'initialize':
      return { jsonrpc: '2.0', id, result: { protocolVersion: '2025-06-18', capabilities: { tools: { listChanged: false } }, serverInfo: { name: 'demo-tools', version: '1.0.0' } } };
    case 'ping':
      return { jsonrpc: '2.0', id, result: {} };
    case 'tools/list':
      return { jsonrpc: '2.0', id, result: { tools: DEMO_TOOLS } };
    case 'tools/call': {
      const params = (msg['params'] ?? {}) as Json;
      const name = String(params['name']);
      const args = (params['arguments'] ?? {}) as Json;
      const text = name === 'transfer_funds' ? `transferred ${String(args['amount'])} ${String(args['currency'])}` : `${name} done`;
      return { jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }], isError: false } };
    }
    default:
      return { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } };
  }
}

export class DemoMcpServer {
  /** Every JSON-RPC method the server received, in order. */
  readonly received: string[] = [];
  /** Tool names of the tools/call messages it received. */
  readonly calledTools: string[] = [];

  handle = (req: McpHttpRequest): McpHttpResponse => {
    const get = (n: string) => req.headers.find(([k]) => k === n)?.[1];
    let parsed: unknown;
    try {
      parsed = JSON.parse(req.body.toString('utf8'));
    } catch {
      return json(400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    }
    const list = Array.isArray(parsed) ? (parsed as Json[]) : [parsed as Json];
    for (const m of list) {
      if (typeof m['method'] === 'string') this.received.push(m['method']);
      if (m['method'] === 'tools/call') this.calledTools.push(String(((m['params'] ?? {}) as Json)['name']));
    }
    const answers = list.map(answer).filter((a): a is Json => a !== undefined);
    if (answers.length === 0) return { status: 202, headers: [], body: Buffer.alloc(0) };
    const accept = get('accept') ?? '';
    if (accept.includes('text/event-stream') && !accept.startsWith('application/json')) {
      const text = answers.map((a, i) => `event: message\nid: ${i + 1}\ndata: ${JSON.stringify(a)}\n\n`).join('');
      const body = Buffer.from(text);
      return { status: 200, headers: [['content-type', 'text/event-stream'], ['content-length', String(body.length)]], body };
    }
    return json(200, Array.isArray(parsed) ? answers : answers[0]);
  };
}

function json(status: number, value: unknown): McpHttpResponse {
  const body = Buffer.from(JSON.stringify(value));
  return { status, headers: [['content-type', 'application/json'], ['content-length', String(body.length)]], body };
}
