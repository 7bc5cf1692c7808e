/**
 * An MCP server behind a real Envoy 1.40 and mesh-pep (envoy/mcp.yaml as shipped, rendered for
 * loopback): what an MCP client actually receives for an allowed call, a denied tool, an argument over
 * its limit and a tools/list, in JSON and in an event stream.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ensureEnvoy, readShipped, renderEnvoyConfig, startEnvoy, startMeshPep, validateEnvoyConfig, REPO_ROOT, type MeshPepProcess, type RunningEnvoy } from '../tools/envoy/index.js';
import { loadPolicyFile } from '../src/config/load.js';
import { mintPolicyToken } from '../src/identity/dev-issuer.js';
import { DemoMcpServer } from '../src/demo/mcp-server.js';

const POLICY = `security_mesh:
  identity: {issuer: "https://issuer.e2e", audiences: [agent-mesh], jwks_file: keys/issuer.jwks.json}
  keys: {dir: keys}
  audit: {file: audit/audit.jsonl}
  domains:
    - name: tools
      tier: RETRIEVAL
      tier_scope: response
      allowed_roles: [EXECUTOR, ORCHESTRATOR]
      dlp: {action: block, entities: [AWS_ACCESS_KEY, PRIVATE_KEY, GITHUB_TOKEN]}
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
`;

let envoy: RunningEnvoy;
let pep: MeshPepProcess;
let upstream: http.Server;
let dir: string;
const mcp = new DemoMcpServer();
let tokens: { exec: string; orch: string };

before(async () => {
  const bin = await ensureEnvoy();
  dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-e2e-mcp-'));
  await writeFile(path.join(dir, 'policy.yaml'), POLICY);
  pep = await startMeshPep({ configFile: path.join(dir, 'policy.yaml'), extraArgs: ['--init-keys'] });
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = Object.entries(req.headers).map(([k, v]) => [k, String(v)] as [string, string]);
      const out = mcp.handle({ headers: [[':method', req.method ?? 'GET'], ...headers], body: Buffer.concat(chunks) });
      res.writeHead(out.status, Object.fromEntries(out.headers.filter(([k]) => k !== 'content-length'))).end(out.body);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const cfg = renderEnvoyConfig(readShipped(path.join(REPO_ROOT, 'envoy', 'mcp.yaml')), {
    clusters: { mesh_pep: { host: '127.0.0.1', port: pep.grpcPort }, mcp_tools: { host: '127.0.0.1', port: (upstream.address() as AddressInfo).port } },
  });
  await validateEnvoyConfig(bin.path, cfg);
  envoy = await startEnvoy(cfg, { binary: bin.path, ...(process.env.E2E_ENVOY_DEBUG ? { componentLogLevel: 'ext_authz:debug,ext_proc:debug,http:debug' } : {}) });
  const { policy } = await loadPolicyFile(path.join(dir, 'policy.yaml'));
  tokens = {
    exec: await mintPolicyToken(policy, { agentId: 'executor-1', role: 'EXECUTOR', ttlMs: 600_000 }),
    orch: await mintPolicyToken(policy, { agentId: 'planner-1', role: 'ORCHESTRATOR', ttlMs: 600_000 }),
  };
});

after(async () => {
  await envoy?.stop();
  await pep?.stop();
  await new Promise((r) => upstream?.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function rpc(token: string, body: string, accept = 'application/json, text/event-stream'): Promise<Response> {
  return fetch(`http://127.0.0.1:${envoy.port()}/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept },
    body,
  });
}

const call = (id: number, name: string, args: Record<string, unknown>) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

test('an allowed tools/call reaches the MCP server and its answer comes back', async () => {
  const res = await rpc(tokens.exec, call(1, 'transfer_funds', { amount: 250, currency: 'EUR', to_account: 'DE89370400440532013000' }), 'application/json');
  const text = await res.text();
  assert.equal(res.status, 200, text + (await envoy.log()));
  assert.equal(JSON.parse(text).result.content[0].text, 'transferred 250 EUR');
  assert.equal(mcp.calledTools.at(-1), 'transfer_funds');
});

test('a denied tool: the client receives HTTP 200 with the JSON-RPC error, the server never sees it', async () => {
  const before = mcp.received.length;
  const res = await rpc(tokens.exec, call(7, 'shell_exec', { cmd: 'id' }));
  const text = await res.text();
  assert.equal(res.status, 200, text + (await readFile(path.join(dir, 'audit', 'audit.jsonl'), 'utf8')).slice(-3000));
  assert.equal(res.headers.get('content-type'), 'application/json');
  assert.equal(res.headers.get('x-mesh-reason'), 'tool_not_allowed');
  assert.deepEqual(JSON.parse(text), { jsonrpc: '2.0', id: 7, error: { code: -32001, message: 'tool not allowed for this caller', data: { reason: 'tool_not_allowed' } } });
  assert.equal(mcp.received.length, before);
});

test('an argument over its limit is rejected with arguments_rejected', async () => {
  const before = mcp.received.length;
  const res = await rpc(tokens.exec, call(8, 'transfer_funds', { amount: 5000, currency: 'EUR', to_account: 'DE89370400440532013000' }));
  const body = (await res.json()) as { id: number; error: { code: number; data: { reason: string } } };
  assert.equal(res.status, 200);
  assert.equal(body.id, 8);
  assert.equal(body.error.code, -32001);
  assert.equal(body.error.data.reason, 'arguments_rejected');
  assert.equal(mcp.received.length, before);
});

test('tools/list is filtered for the caller, in JSON and in an event stream', async () => {
  const list = '{"jsonrpc":"2.0","id":3,"method":"tools/list"}';
  const json = await rpc(tokens.orch, list, 'application/json');
  const names = ((await json.json()) as { result: { tools: Array<{ name: string }> } }).result.tools.map((t) => t.name);
  assert.deepEqual(names, ['search_docs']);
  const exec = await rpc(tokens.exec, list, 'application/json');
  assert.deepEqual(((await exec.json()) as { result: { tools: Array<{ name: string }> } }).result.tools.map((t) => t.name), ['search_docs', 'fs_read_file', 'transfer_funds']);

  const sse = await rpc(tokens.orch, list, 'text/event-stream');
  assert.equal(sse.headers.get('content-type'), 'text/event-stream');
  const text = await sse.text();
  assert.match(text, /^event: message\nid: 1\ndata: \{"jsonrpc":"2\.0","id":3,"result":\{"tools":\[\{"name":"search_docs"/);
  assert.ok(!text.includes('shell_exec') && !text.includes('transfer_funds'), text);
});

test('a duplicate-key body is refused before it reaches the server', async () => {
  const before = mcp.received.length;
  const res = await rpc(tokens.exec, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","name":"shell_exec"}}');
  assert.notEqual(res.status, 200);
  await res.arrayBuffer();
  assert.equal(mcp.received.length, before);
});
