import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { denyReason, envoyCheckRequest, setHeaders, useCheckServer, type CheckResponseView } from '../support/envoy-check.js';
import { policyYaml } from '../support/mesh-fixture.js';
import { call, MCP_DOMAINS } from './fixtures.js';

/**
 * Agent-protocol rules at Check, over the real gRPC wire: the body Envoy sends with `with_request_body`
 * (as `body` or, with `pack_as_bytes`, `raw_body`) and Envoy's MCP filter metadata. A denied call never
 * reaches the callee: the CheckResponse is a deny whose HTTP answer is the JSON-RPC error.
 */
const h = useCheckServer({ yaml: policyYaml(MCP_DOMAINS) });

function request(token: string, extra: { body?: string; rawBody?: Buffer; headers?: Record<string, string>; mcp?: Record<string, unknown> } = {}) {
  const req = envoyCheckRequest({ token, host: 'tools.agents.svc', path: '/mcp', domain: 'tools', headers: extra.headers }) as {
    attributes: { request: { http: Record<string, unknown> }; metadata_context?: unknown };
  };
  if (extra.body !== undefined) req.attributes.request.http['body'] = extra.body;
  if (extra.rawBody !== undefined) req.attributes.request.http['raw_body'] = extra.rawBody;
  if (extra.mcp) req.attributes.metadata_context = { filter_metadata: { mcp_proxy: { fields: extra.mcp } } };
  return req;
}

function httpStatus(res: CheckResponseView): number {
  const c = res.denied_response?.status.code;
  return c === 'OK' ? 200 : c === 'Forbidden' ? 403 : Number(c);
}

function header(res: CheckResponseView, name: string): string | undefined {
  return res.denied_response?.headers.find((x) => x.header.key === name)?.header.value;
}

describe('MCP rules at Check', () => {
  it('denies a forbidden tool from the body Envoy sends: HTTP 200 with the JSON-RPC error, gRPC status 7', async () => {
    const token = await h.fx.token({ agent: 'agent-exec-1', role: 'EXECUTOR' });
    const res = await h.client.check(request(token, { body: call('x-1', 'shell_exec', { cmd: 'id' }) }));
    assert.equal(res.status.code, 7);
    assert.equal(httpStatus(res), 200);
    assert.equal(denyReason(res), 'tool_not_allowed');
    assert.equal(header(res, 'content-type'), 'application/json');
    assert.deepEqual(JSON.parse(res.denied_response!.body), {
      jsonrpc: '2.0',
      id: 'x-1',
      error: { code: -32001, message: 'tool not allowed for this caller', data: { reason: 'tool_not_allowed' } },
    });
  });

  it('allows a permitted call, and judges raw_body (pack_as_bytes) the same way', async () => {
    const token = await h.fx.token({ agent: 'agent-exec-1', role: 'EXECUTOR' });
    const ok = await h.client.check(request(token, { body: call(1, 'search_docs', { query: 'q' }) }));
    assert.equal(ok.status.code, 0);
    assert.equal(setHeaders(ok).get('x-mesh-domain'), 'tools');
    const args = await h.client.check(request(token, { rawBody: Buffer.from(call(2, 'transfer_funds', { amount: 5000, currency: 'EUR', to_account: 'DE89370400440532013000' })) }));
    assert.equal(denyReason(args), 'arguments_rejected');
    assert.equal(JSON.parse(args.denied_response!.body).id, 2);
  });

  it('refuses a body that is not strict JSON-RPC (duplicate keys) with payload_rejected', async () => {
    const token = await h.fx.token({ agent: 'agent-exec-1', role: 'EXECUTOR' });
    const res = await h.client.check(request(token, { body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","name":"shell_exec"}}' }));
    assert.equal(denyReason(res), 'payload_rejected');
    assert.equal(httpStatus(res), 403);
  });

  it('leaves a truncated body (x-envoy-auth-partial-body) to ext_proc', async () => {
    const token = await h.fx.token({ agent: 'agent-exec-1', role: 'EXECUTOR' });
    const res = await h.client.check(request(token, { body: call(1, 'shell_exec').slice(0, 30), headers: { 'x-envoy-auth-partial-body': 'true' } }));
    assert.equal(res.status.code, 0);
  });

  it("judges method and tool from Envoy's MCP filter metadata", async () => {
    const token = await h.fx.token({ agent: 'agent-orch-1', role: 'ORCHESTRATOR' });
    const struct = (name: string) => ({ structValue: { fields: { name: { stringValue: name } } } });
    const denied = await h.client.check(
      request(token, { mcp: { jsonrpc: { stringValue: '2.0' }, method: { stringValue: 'tools/call' }, id: { numberValue: 41 }, params: struct('fs_read_file') } }),
    );
    assert.equal(denyReason(denied), 'tool_not_allowed');
    assert.equal(httpStatus(denied), 200);
    assert.equal(JSON.parse(denied.denied_response!.body).id, 41);

    const allowed = await h.client.check(request(token, { mcp: { method: { stringValue: 'tools/call' }, id: { stringValue: 'a' }, params: struct('search_docs') } }));
    assert.equal(allowed.status.code, 0);

    const note = await h.client.check(request(token, { mcp: { method: { stringValue: 'notifications/cancelled' } } }));
    assert.equal(denyReason(note), 'method_not_allowed');
    assert.equal(httpStatus(note), 403, 'a notification has no id to answer');
  });

  it('records the method and tool in the Check audit record, never the arguments', async () => {
    const token = await h.fx.token({ agent: 'agent-exec-1', role: 'EXECUTOR' });
    await h.client.check(request(token, { body: call(9, 'transfer_funds', { amount: 77777, currency: 'EUR', to_account: 'DE11111111111111111111' }) }));
    const text = await readFile(path.join(h.fx.dir, 'audit', 'audit.jsonl'), 'utf8');
    const records = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const rec = records.find((r) => r['event'] === 'authz.check' && r['tool'] === 'transfer_funds');
    assert.ok(rec, 'a Check record names the tool');
    assert.equal(rec['rpc_method'], 'tools/call');
    assert.equal(rec['decision'], 'deny');
    assert.equal(rec['reason'], 'arguments_rejected');
    assert.ok(!text.includes('77777') && !text.includes('DE11111111111111111111'));
  });
});
