import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EnvoyPeer, header, type ExchangeResult, type PeerOptions } from '../support/envoy-peer.js';
import { startTestServer, type TestServer } from '../support/extproc-server.js';
import { DemoMcpServer } from '../../src/demo/mcp-server.js';
import { call, GOOD_TRANSFER, MCP_POLICY, rpcPost } from './fixtures.js';

/**
 * Contract section 7 over the real gRPC wire: the real server, driven by the ext_proc Envoy peer with
 * real bytes, the demo MCP server as the callee. Every denial is checked for what the client gets
 * (HTTP 200 + JSON-RPC error, or 403 for notifications) and for what the server never got.
 */
const BUFFERED: PeerOptions['mode'] = { requestBody: 'BUFFERED', responseBody: 'BUFFERED' };
const STREAMED: PeerOptions['mode'] = { requestBody: 'STREAMED', responseBody: 'STREAMED' };

describe('MCP and A2A in ext_proc over real gRPC', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer(MCP_POLICY);
  });
  after(async () => {
    await t?.close();
  });

  async function send(req: ReturnType<typeof rpcPost>, server = new DemoMcpServer(), over: Partial<PeerOptions> = {}): Promise<{ r: ExchangeResult; server: DemoMcpServer }> {
    const p = new EnvoyPeer({ address: t.address, mode: BUFFERED, ...over });
    try {
      return { r: await p.exchange(req, server.handle), server };
    } finally {
      p.close();
    }
  }

  function rpcError(r: ExchangeResult): { status: number; reason: string | undefined; body: string } {
    assert.equal(r.kind, 'local');
    assert.equal(header(r.response.headers, 'content-type'), 'application/json');
    return { status: r.response.status, reason: header(r.response.headers, 'x-mesh-reason'), body: r.response.body.toString() };
  }

  it('an allowed tools/call reaches the MCP server in plaintext (tier_scope: response) and its answer comes back', async () => {
    const { r, server } = await send(rpcPost(call(1, 'transfer_funds', GOOD_TRANSFER)));
    assert.equal(r.kind, 'upstream');
    assert.equal(r.response.status, 200);
    assert.deepEqual(server.calledTools, ['transfer_funds']);
    assert.equal(JSON.parse(r.upstreamRequest!.body.toString()).params.arguments.amount, 250);
    assert.match(r.response.body.toString(), /transferred 250 EUR/);
  });

  it('a denied tool answers HTTP 200 with a JSON-RPC error for the id, and the server never sees the call', async () => {
    const { r, server } = await send(rpcPost(call(7, 'shell_exec', { cmd: 'rm -rf /' })));
    const e = rpcError(r);
    assert.equal(e.status, 200);
    assert.equal(e.reason, 'tool_not_allowed');
    assert.deepEqual(JSON.parse(e.body), {
      jsonrpc: '2.0',
      id: 7,
      error: { code: -32001, message: 'tool not allowed for this caller', data: { reason: 'tool_not_allowed' } },
    });
    assert.deepEqual(server.received, []);
  });

  it('echoes the id exactly, with its JSON type and digits (string, float, 2^64, null)', async () => {
    for (const rawId of ['"req-\\u00e9-1"', '1.50', '18446744073709551617', 'null', '-0']) {
      const body = `{"jsonrpc":"2.0","id":${rawId},"method":"tools/call","params":{"name":"shell_exec"}}`;
      const e = rpcError((await send(rpcPost(body))).r);
      assert.ok(e.body.startsWith(`{"jsonrpc":"2.0","id":${rawId},"error":{"code":-32001`), e.body);
    }
  });

  it('a role outside the rule is denied: fs_read_* is for EXECUTOR only', async () => {
    const ok = await send(rpcPost(call(1, 'fs_read_file', { path: 'a' })));
    assert.equal(ok.r.kind, 'upstream');
    const { r, server } = await send(rpcPost(call(2, 'fs_read_file', { path: 'a' }), { role: 'ORCHESTRATOR' }));
    assert.equal(rpcError(r).reason, 'tool_not_allowed');
    assert.deepEqual(server.received, []);
  });

  it('a method the domain does not list is denied method_not_allowed', async () => {
    const { r, server } = await send(rpcPost('{"jsonrpc":"2.0","id":"r1","method":"resources/list"}'));
    const e = rpcError(r);
    assert.equal(e.status, 200);
    assert.equal(e.reason, 'method_not_allowed');
    assert.equal(JSON.parse(e.body).id, 'r1');
    assert.deepEqual(server.received, []);
  });

  it('arguments over their limits, outside the enum, off the pattern, of the wrong type or missing are rejected', async () => {
    const bad: Array<Record<string, unknown>> = [
      { ...GOOD_TRANSFER, amount: 5000 },
      { ...GOOD_TRANSFER, amount: '5' },
      { ...GOOD_TRANSFER, amount: 1e999 },
      { ...GOOD_TRANSFER, currency: 'GBP' },
      { ...GOOD_TRANSFER, to_account: 'GB89370400440532013000' },
      { ...GOOD_TRANSFER, to_account: 'DE893704004405320130001' },
      { amount: 10, currency: 'EUR' },
    ];
    for (const args of bad) {
      const body = args.amount === 1e999 ? call(3, 'transfer_funds', args).replace('null', '1e999') : call(3, 'transfer_funds', args);
      const { r, server } = await send(rpcPost(body));
      const e = rpcError(r);
      assert.equal(e.status, 200, JSON.stringify(args));
      assert.equal(e.reason, 'arguments_rejected', JSON.stringify(args));
      assert.equal(JSON.parse(e.body).error.data.reason, 'arguments_rejected');
      assert.deepEqual(server.received, []);
    }
    // Unknown argument keys are allowed.
    const { r } = await send(rpcPost(call(4, 'transfer_funds', { ...GOOD_TRANSFER, memo: 'rent' })));
    assert.equal(r.kind, 'upstream');
  });

  it('never puts argument values in the audit record; records the method and tool', async () => {
    const secret = 'DE00000000000000000042';
    await send(rpcPost(call(5, 'transfer_funds', { ...GOOD_TRANSFER, to_account: secret })));
    await send(rpcPost(call(6, 'transfer_funds', { ...GOOD_TRANSFER, amount: 99999, to_account: secret })));
    const records = await t.auditRecords();
    const text = JSON.stringify(records);
    assert.ok(!text.includes(secret) && !text.includes('99999'), 'no argument value in the audit');
    const denied = records.find((x) => x.reason === 'arguments_rejected');
    assert.equal(denied?.rpc_method, 'tools/call');
    assert.equal(denied?.tool, 'transfer_funds');
    assert.equal(denied?.decision, 'deny');
    assert.ok(records.some((x) => x.event === 'extproc.request_body' && x.decision === 'pass' && x.tool === 'transfer_funds'));
  });

  it('a denied notification answers 403 with the usual JSON body', async () => {
    const { r, server } = await send(rpcPost('{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}'));
    assert.equal(r.kind, 'local');
    assert.equal(r.response.status, 403);
    assert.equal(header(r.response.headers, 'x-mesh-reason'), 'method_not_allowed');
    assert.equal(JSON.parse(r.response.body.toString()).reason, 'method_not_allowed');
    assert.deepEqual(server.received, []);
    const ok = await send(rpcPost('{"jsonrpc":"2.0","method":"notifications/initialized"}'));
    assert.equal(ok.r.kind, 'upstream');
    assert.equal(ok.r.response.status, 202);
  });

  it('a batch with any denied element is denied whole: one error per id, nothing reaches the server', async () => {
    const batch = `[${call('a', 'search_docs', { query: 'x' })},{"jsonrpc":"2.0","method":"notifications/initialized"},${call(9, 'shell_exec')}]`;
    const { r, server } = await send(rpcPost(batch));
    const e = rpcError(r);
    assert.equal(e.status, 200);
    assert.equal(e.reason, 'tool_not_allowed');
    const answers = JSON.parse(e.body) as Array<{ id: unknown; error: { code: number; data: { reason: string } } }>;
    assert.deepEqual(answers.map((a) => a.id), ['a', 9]);
    assert.ok(answers.every((a) => a.error.code === -32001 && a.error.data.reason === 'tool_not_allowed'));
    assert.deepEqual(server.received, []);

    const ok = await send(rpcPost(`[${call(1, 'search_docs', { query: 'x' })},{"jsonrpc":"2.0","id":2,"method":"ping"}]`));
    assert.equal(ok.r.kind, 'upstream');
    assert.deepEqual(ok.server.received, ['tools/call', 'ping']);

    const notes = await send(rpcPost('[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","method":"notifications/cancelled"}]'));
    assert.equal(notes.r.response.status, 403);
  });

  it('refuses what is not strict JSON-RPC 2.0 as payload_rejected, duplicate keys included', async () => {
    const bodies = [
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","name":"shell_exec"}}',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","\\u006eame":"shell_exec"}}',
      '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}',
      '{"jsonrpc":"1.0","id":1,"method":"ping"}',
      '{"id":1,"method":"ping"}',
      '[]',
      '[1]',
      '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}',
      '{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}',
      '{"jsonrpc":"2.0","id":1,"method":"ping",}',
      'not json',
      '[' .repeat(5000),
    ];
    for (const b of bodies) {
      const { r, server } = await send(rpcPost(b));
      assert.equal(r.kind, 'local', b);
      assert.equal(r.response.status, 502, b);
      assert.equal(header(r.response.headers, 'x-mesh-reason'), 'payload_rejected', b);
      assert.deepEqual(server.received, []);
    }
    const latin1 = Buffer.from([...Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping","x":"'), 0xe9, ...Buffer.from('"}')]);
    assert.equal((await send(rpcPost(latin1))).r.response.status, 502);
  });

  it('reads the body as JSON-RPC whatever content-type the client claims', async () => {
    const { r, server } = await send(rpcPost(call(1, 'shell_exec'), { contentType: 'text/plain' }));
    assert.equal(rpcError(r).reason, 'tool_not_allowed');
    assert.deepEqual(server.received, []);
  });

  it('filters tools/list in application/json per role, keeping the id as sent', async () => {
    const list = '{"jsonrpc":"2.0","id":18446744073709551617,"method":"tools/list"}';
    // A server that keeps big ids exactly (the demo server, in JS, would round it itself).
    const exact = new DemoMcpServer();
    const handle = exact.handle;
    exact.handle = (req) => {
      const res = handle(req);
      const text = res.body.toString().replace('"id":18446744073709552000', '"id":18446744073709551617');
      return { ...res, headers: res.headers.filter(([k]) => k !== 'content-length'), body: Buffer.from(text) };
    };
    const exec = (await send(rpcPost(list, { accept: 'application/json' }), exact)).r;
    assert.equal(exec.kind, 'upstream');
    const execBody = exec.response.body.toString();
    assert.ok(execBody.includes('"id":18446744073709551617'), execBody);
    assert.deepEqual(JSON.parse(execBody).result.tools.map((x: { name: string }) => x.name), ['search_docs', 'fs_read_file', 'transfer_funds']);
    assert.equal(header(exec.response.headers, 'content-length'), String(exec.response.body.length));

    const orch = (await send(rpcPost(list, { role: 'ORCHESTRATOR', accept: 'application/json' }), exact)).r;
    assert.ok(orch.response.body.toString().includes('"id":18446744073709551617'));
    assert.deepEqual(JSON.parse(orch.response.body.toString()).result.tools.map((x: { name: string }) => x.name), ['search_docs']);
  });

  it('filters tools/list inside text/event-stream per event, with the SSE framing intact', async () => {
    for (const mode of [BUFFERED, STREAMED]) {
      const batch = '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]';
      const { r } = await send(rpcPost(batch, { role: 'ORCHESTRATOR', accept: 'text/event-stream' }), new DemoMcpServer(), { mode, chunkSize: 64 });
      assert.equal(r.kind, 'upstream');
      assert.equal(header(r.response.headers, 'content-type'), 'text/event-stream');
      const text = r.response.body.toString();
      const events = text.split('\n\n').filter((e) => e !== '');
      assert.equal(events.length, 2, text);
      assert.equal(events[0], 'event: message\nid: 1\ndata: {"jsonrpc":"2.0","id":1,"result":{}}');
      assert.ok(events[1]!.startsWith('event: message\nid: 2\ndata: {'), events[1]);
      const data = JSON.parse(events[1]!.split('\n')[2]!.slice('data: '.length));
      assert.equal(data.id, 2);
      assert.deepEqual(data.result.tools.map((x: { name: string }) => x.name), ['search_docs']);
      assert.ok(!text.includes('shell_exec') && !text.includes('transfer_funds'));
    }
  });

  it('refuses a tools/list answer that cannot be filtered (duplicate keys, another type)', async () => {
    const list = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}';
    const dup = (): { status: number; headers: Array<[string, string]>; body: Buffer } => {
      const body = Buffer.from('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"shell_exec"}]},"result":{"tools":[]}}');
      return { status: 200, headers: [['content-type', 'application/json'], ['content-length', String(body.length)]], body };
    };
    const p = new EnvoyPeer({ address: t.address, mode: BUFFERED });
    try {
      const r = await p.exchange(rpcPost(list), dup);
      assert.equal(r.response.status, 502);
      assert.equal(header(r.response.headers, 'x-mesh-reason'), 'payload_rejected');
      const html = await p.exchange(rpcPost(list), () => ({ status: 200, headers: [['content-type', 'text/html']], body: Buffer.from('<ul><li>shell_exec</li></ul>') }));
      assert.equal(html.response.status, 502);
      const err = await p.exchange(rpcPost(list), () => ({ status: 503, headers: [['content-type', 'text/html']], body: Buffer.from('<h1>down</h1>') }));
      assert.equal(err.response.status, 503, 'an error answer has no list to filter');
    } finally {
      p.close();
    }
  });

  it('with the default tier scope the MCP server receives a JWE; denials are still JSON-RPC errors', async () => {
    const { r, server } = await send(rpcPost(call(1, 'search_docs', { query: 'q' }), { domain: 'tools_sealed' }));
    assert.equal(r.kind, 'upstream');
    assert.equal(header(r.upstreamRequest!.headers, 'content-type'), 'application/jose');
    assert.deepEqual(server.received, [], 'the demo server cannot read a JWE');
    const denied = await send(rpcPost(call(2, 'fs_read_file'), { domain: 'tools_sealed' }));
    assert.equal(rpcError(denied.r).reason, 'tool_not_allowed');
  });

  it('A2A: methods are allowed per role; others are method_not_allowed', async () => {
    const a2a = (id: number, method: string) => `{"jsonrpc":"2.0","id":${id},"method":"${method}","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"m1"}}}`;
    const echo = () => {
      const body = Buffer.from('{"jsonrpc":"2.0","id":1,"result":{"kind":"message","messageId":"m2","role":"agent","parts":[]}}');
      return { status: 200, headers: [['content-type', 'application/json']] as Array<[string, string]>, body };
    };
    const p = new EnvoyPeer({ address: t.address, mode: BUFFERED });
    try {
      const ok = await p.exchange(rpcPost(a2a(1, 'message/send'), { domain: 'agents', role: 'ORCHESTRATOR', path: '/a2a' }), echo);
      assert.equal(ok.kind, 'upstream');
      const no = await p.exchange(rpcPost(a2a(2, 'message/send'), { domain: 'agents', role: 'EXECUTOR', path: '/a2a' }), echo);
      assert.equal(no.kind, 'local');
      assert.equal(no.response.status, 200);
      assert.equal(JSON.parse(no.response.body.toString()).error.data.reason, 'method_not_allowed');
      const unknown = await p.exchange(rpcPost(a2a(3, 'tasks/cancel'), { domain: 'agents', role: 'ORCHESTRATOR', path: '/a2a' }), echo);
      assert.equal(header(unknown.response.headers, 'x-mesh-reason'), 'method_not_allowed');
      const get = await p.exchange(rpcPost('{"jsonrpc":"2.0","id":4,"method":"tasks/get","params":{"id":"t1"}}', { domain: 'agents', role: 'EXECUTOR', path: '/a2a' }), echo);
      assert.equal(get.kind, 'upstream');
    } finally {
      p.close();
    }
  });

  it('A2A: the agent card passes through; a masking domain replaces internal origins with the caller-facing one', async () => {
    const card = {
      name: 'planner',
      url: 'http://10.12.0.9:8080/a2a/v1',
      preferredTransport: 'JSONRPC',
      additionalInterfaces: [
        { url: 'http://planner-7d9f.agents.svc.cluster.local:8080/a2a/v1', transport: 'JSONRPC' },
        { url: 'grpc://10.12.0.9:50051', transport: 'GRPC' },
      ],
      provider: { organization: 'ACME', url: 'https://acme.example' },
      skills: [],
    };
    const serve = () => {
      const body = Buffer.from(JSON.stringify(card));
      return { status: 200, headers: [['content-type', 'application/json'], ['content-length', String(body.length)]] as Array<[string, string]>, body };
    };
    const cardGet = (domain: string) => {
      const r = rpcPost('', { domain, role: 'ORCHESTRATOR', method: 'GET', path: '/.well-known/agent-card.json', authority: 'planner.agents.example', scheme: 'https' });
      return { headers: r.headers.filter(([k]) => !['content-type', 'content-length', 'accept'].includes(k)) };
    };
    const p = new EnvoyPeer({ address: t.address, mode: BUFFERED });
    try {
      const masked = await p.exchange(cardGet('agents'), serve);
      assert.equal(masked.kind, 'upstream');
      assert.equal(masked.response.status, 200);
      const got = JSON.parse(masked.response.body.toString());
      assert.equal(got.url, 'https://planner.agents.example/a2a/v1');
      assert.deepEqual(got.additionalInterfaces.map((i: { url: string }) => i.url), ['https://planner.agents.example/a2a/v1', 'https://planner.agents.example']);
      assert.equal(got.provider.url, 'https://acme.example', 'the provider is not topology');
      assert.ok(!masked.response.body.toString().includes('10.12.0.9') && !masked.response.body.toString().includes('cluster.local'));
      assert.equal(header(masked.response.headers, 'content-length'), String(masked.response.body.length));

      const open = await p.exchange(cardGet('agents_open'), serve);
      assert.deepEqual(JSON.parse(open.response.body.toString()), card, 'a domain without masking passes the card as it is');
    } finally {
      p.close();
    }
  });

  it('counts every message by domain, method, tool and decision with bounded labels', async () => {
    await send(rpcPost(call(1, 'search_docs', { query: 'q' })));
    await send(rpcPost(call(2, 'invented_tool_xyz')));
    await send(rpcPost('{"jsonrpc":"2.0","id":3,"method":"made/up/method"}'));
    const m = t.server.runtime.metrics.rpcCalls;
    assert.ok(m.get({ domain: 'tools', method: 'tools/call', tool: 'search_docs', decision: 'allow' }) >= 1);
    assert.ok(m.get({ domain: 'tools', method: 'tools/call', tool: 'unlisted', decision: 'deny' }) >= 1);
    assert.ok(m.get({ domain: 'tools', method: 'other', tool: '', decision: 'deny' }) >= 1);
    const text = t.server.runtime.metrics.registry.render();
    assert.ok(!text.includes('invented_tool_xyz') && !text.includes('made/up/method'));
  });
});

describe("Check's JSON-RPC denial through ext_proc's response path", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer(MCP_POLICY);
  });
  after(async () => {
    await t?.close();
  });

  it('passes the 200 denial unchanged (real Envoy sends it to ext_proc), and still refuses other domainless answers', async () => {
    // Envoy runs the local reply of an ext_authz deny (here status 200) through ext_proc's response
    // phases, with no request phase before it (seen with Envoy 1.40 in e2e/mcp.test.ts).
    const p = new EnvoyPeer({ address: t.address, mode: { requestHeaders: 'SKIP', requestBody: 'NONE', responseBody: 'BUFFERED' } });
    const denial = '{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"tool not allowed for this caller","data":{"reason":"tool_not_allowed"}}}';
    try {
      const reply = (reason: string) => () => ({
        status: 200,
        headers: [['content-type', 'application/json'], ['x-mesh-reason', reason], ['content-length', String(denial.length)]] as Array<[string, string]>,
        body: Buffer.from(denial),
      });
      const ok = await p.exchange(rpcPost(call(7, 'shell_exec')), reply('tool_not_allowed'));
      assert.equal(ok.response.status, 200);
      assert.equal(ok.response.body.toString(), denial);
      const other = await p.exchange(rpcPost(call(7, 'shell_exec')), reply('dlp_blocked'));
      assert.equal(other.response.status, 403);
      assert.equal(header(other.response.headers, 'x-mesh-reason'), 'no_policy');
    } finally {
      p.close();
    }
  });
});
