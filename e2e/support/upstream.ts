/**
 * The callee behind Envoy in the end-to-end suite: one plain Node HTTP server that records exactly what
 * it received (raw header list as it came off the wire, body bytes) and answers by path, after Envoy's
 * `prefix_rewrite`:
 *   /store/<key>   memory store: PUT/POST keeps body and content type, GET returns them as stored
 *   /enclave       attested enclave: opens the COMPUTATION JWE (TEE) or MPC envelope with its own keys
 *   /model/score   FHE model service: a linear score over encrypted features, public keys only
 *   /mcp           MCP-style JSON-RPC server (initialize, tools/list, tools/call)
 *   /reply/<name>  the answer a test registered with `reply(name, …)`
 *   anything else  echo: the body back with its content type
 * Every answer carries the topology headers a real callee leaks (`server`, `x-powered-by`, `via`), so
 * the suite can see which of them reach the client.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  url: string;
  /** Lower-case names, as received (repeated headers stay repeated). */
  rawHeaders: Array<[string, string]>;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** What the enclave or MPC parties opened, when they did. */
  opened?: unknown;
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export type Opener = (body: Buffer, path: string) => Promise<unknown>;

export const UPSTREAM_TOPOLOGY = { server: 'agent-runtime/1.4', 'x-powered-by': 'node', via: '1.1 callee-sidecar' } as const;

export class RecordingUpstream {
  readonly received: Received[] = [];
  readonly store = new Map<string, { body: Buffer; contentType: string }>();
  private readonly replies = new Map<string, Reply>();
  private server: http.Server | undefined;
  /** Set by the stack once keys exist: how the enclave opens what was sealed to it. */
  openEnclave: Opener | undefined;
  /** The FHE model service (public keys only). */
  scoreModel: ((doc: unknown) => Promise<unknown>) | undefined;
  port = 0;

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rawHeaders: Array<[string, string]> = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2) rawHeaders.push([req.rawHeaders[i]!.toLowerCase(), req.rawHeaders[i + 1]!]);
        const rec: Received = { method: req.method ?? '', url: req.url ?? '', rawHeaders, headers: req.headers, body: Buffer.concat(chunks) };
        this.received.push(rec);
        this.answer(rec).then(
          (r) => send(res, r),
          (e: Error) => send(res, { status: 500, headers: { 'content-type': 'text/plain' }, body: `upstream failed: ${e.message}` }),
        );
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  reply(name: string, r: Reply): string {
    this.replies.set(name, r);
    return `/reply/${name}`;
  }

  /** Records received since `mark` (the length of `received` before a request). */
  since(mark: number): Received[] {
    return this.received.slice(mark);
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }

  private async answer(rec: Received): Promise<Reply> {
    const path = rec.url.split('?')[0]!;
    const type = String(rec.headers['content-type'] ?? 'application/octet-stream');
    if (path.startsWith('/store/')) {
      if (rec.method === 'PUT' || rec.method === 'POST') {
        this.store.set(path, { body: rec.body, contentType: type });
        return { status: 201, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stored: path, bytes: rec.body.length }) };
      }
      const o = this.store.get(path);
      if (!o) return { status: 404, headers: { 'content-type': 'application/json' }, body: '{"error":"not found"}' };
      return { status: 200, headers: { 'content-type': o.contentType }, body: o.body };
    }
    if (path === '/enclave') {
      if (!this.openEnclave) throw new Error('no enclave keys');
      rec.opened = await this.openEnclave(rec.body, path);
      const fields = Object.keys(rec.opened as object).sort();
      return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ opened_in_enclave: fields }) };
    }
    if (path === '/model/score') {
      if (!this.scoreModel) throw new Error('no model keys');
      const doc = JSON.parse(rec.body.toString('utf8')) as unknown;
      return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(await this.scoreModel(doc)) };
    }
    if (path === '/mcp') return mcp(rec.body);
    if (path.startsWith('/reply/')) {
      const r = this.replies.get(path.slice('/reply/'.length));
      if (!r) return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'no reply registered' };
      return r;
    }
    return { status: 200, headers: { 'content-type': type }, body: rec.body };
  }
}

function send(res: http.ServerResponse, r: Reply): void {
  const body = r.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body);
  res.writeHead(r.status ?? 200, { ...UPSTREAM_TOPOLOGY, 'content-length': String(body.length), ...r.headers });
  res.end(body);
}

/** A JSON-RPC 2.0 server with MCP's shapes: enough for a client to list and call tools. */
function mcp(body: Buffer): Reply {
  let msg: { jsonrpc?: string; id?: unknown; method?: string; params?: { name?: string } };
  try {
    msg = JSON.parse(body.toString('utf8')) as typeof msg;
  } catch {
    return rpc({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
  }
  const id = msg.id ?? null;
  switch (msg.method) {
    case 'initialize':
      return rpc({ jsonrpc: '2.0', id, result: { protocolVersion: '2025-06-18', serverInfo: { name: 'e2e-tools', version: '1' }, capabilities: { tools: {} } } });
    case 'tools/list':
      return rpc({ jsonrpc: '2.0', id, result: { tools: [{ name: 'search_docs', inputSchema: { type: 'object' } }] } });
    case 'tools/call':
      return rpc({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: `called ${msg.params?.name ?? '?'}` }] } });
    default:
      return rpc({ jsonrpc: '2.0', id, error: { code: -32601, message: 'method not found' } });
  }
}

function rpc(v: unknown): Reply {
  return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(v) };
}
