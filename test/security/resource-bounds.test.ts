import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadPolicyFile } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { loadServices } from '../../src/envoy/protos.js';
import { currentLoad } from '../../src/server/overload.js';
import { checkedHeaders } from '../support/extproc-server.js';
import { CheckClient, denyReason, envoyCheckRequest, startTestServer } from '../support/envoy-check.js';
import { createMeshFixture, DEFAULT_DOMAINS, policyYaml } from '../support/mesh-fixture.js';
import { startHarness } from './support.js';

/**
 * Issue 17, finding 10: a process-wide budget on the body bytes ext_proc streams hold, and `Explain`
 * behind the same admission (header limit, in-flight bound) as Check.
 */
type Answer = Record<string, unknown> & {
  immediate_response?: { status: { code: string | number }; body: Buffer | string; headers: { set_headers: Array<{ header: { key: string; raw_value?: Buffer; value?: string } }> } };
  request_body?: { response: { body_mutation?: Record<string, unknown> } };
};

type Duplex = grpc.ClientDuplexStream<object, Answer>;

/** One ext_proc stream with its answers in arrival order. */
function openStream(client: { Process(): Duplex }) {
  const call = client.Process();
  const answers: Answer[] = [];
  const waiting: Array<(a: Answer) => void> = [];
  call.on('data', (a: Answer) => {
    const w = waiting.shift();
    if (w) w(a);
    else answers.push(a);
  });
  call.on('error', () => undefined);
  const next = () => new Promise<Answer>((resolve) => (answers.length ? resolve(answers.shift()!) : waiting.push(resolve)));
  return { call, next };
}

const FIELD = { raw: (h: { raw_value?: Buffer; value?: string }) => (h.raw_value ? Buffer.from(h.raw_value).toString() : (h.value ?? '')) };

function reasonOf(a: Answer): string | undefined {
  const h = a.immediate_response?.headers.set_headers.find((x) => x.header.key === 'x-mesh-reason');
  return h ? FIELD.raw(h.header) : undefined;
}

const BUDGET_DOMAINS = `
    - name: agent_memory
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER, ORCHESTRATOR]
      metadata_masking: true
      max_body_bytes: 65536
      match: {hosts: ["memory.agents.svc"]}
`;

describe('in-flight body bytes budget (finding 10)', () => {
  it('a body that would take the process over max_inflight_body_bytes is shed 503 overloaded; the bytes come back when a body ends', async () => {
    const h = await startHarness(policyYaml(BUDGET_DOMAINS, '  server:\n    max_inflight_body_bytes: 65536\n'));
    const client = new (loadServices().ExternalProcessor)(h.server.address, grpc.credentials.createInsecure()) as unknown as { Process(): Duplex; close(): void };
    const key = h.server.runtime.pseudonyms.bindingKey();
    const headers = () => ({
      request_headers: {
        headers: { headers: [[':path', '/v1/memory/x'], [':method', 'POST'], ['content-type', 'text/plain'], ...checkedHeaders('agent_memory', { method: 'POST', path: '/v1/memory/x' }, { key })].map(([k, v]) => ({ key: k, raw_value: Buffer.from(v!) })) },
        end_of_stream: false,
      },
    });
    const chunk = (n: number, end: boolean) => ({ request_body: { body: Buffer.alloc(n, 0x61), end_of_stream: end } });
    try {
      // Stream A holds 40,000 bytes (a STREAMED chunk, kept until the body ends).
      const a = openStream(client);
      a.call.write(headers());
      assert.ok((await a.next()).request_headers);
      a.call.write(chunk(40_000, false));
      const heldA = await a.next();
      assert.ok(heldA.request_body, 'the first chunk is held (cleared from Envoy)');
      assert.equal(h.server.runtime.bodyBudget.inFlight, 40_000);

      // Stream B's 40,000 bytes would make 80,000 > 65,536: shed, though each body is under max_body_bytes.
      const b = openStream(client);
      b.call.write(headers());
      assert.ok((await b.next()).request_headers);
      b.call.write(chunk(40_000, true));
      const shed = await b.next();
      assert.ok(shed.immediate_response, `stream B must be refused, got ${JSON.stringify(Object.keys(shed))}`);
      const code = shed.immediate_response.status.code;
      assert.ok(code === 503 || code === 'ServiceUnavailable', String(code));
      assert.equal(reasonOf(shed), 'overloaded');
      assert.deepEqual(JSON.parse(Buffer.from(shed.immediate_response.body).toString()), { error: 'the policy enforcement point is overloaded', reason: 'overloaded' });
      assert.equal(h.server.runtime.bodyBudget.inFlight, 40_000, 'a shed body holds nothing');

      // A ends its body: it is protected and answered, and its bytes return to the budget.
      a.call.write(chunk(10, true));
      const doneA = await a.next();
      assert.ok(doneA.request_body?.response.body_mutation, 'A is protected and replaced');
      assert.equal(h.server.runtime.bodyBudget.inFlight, 0);

      // Now a body of the same size fits again.
      const c = openStream(client);
      c.call.write(headers());
      assert.ok((await c.next()).request_headers);
      c.call.write(chunk(40_000, true));
      const doneC = await c.next();
      assert.ok(doneC.request_body?.response.body_mutation, JSON.stringify(Object.keys(doneC)));
      assert.equal(h.server.runtime.bodyBudget.inFlight, 0);

      // A stream cancelled mid-body gives its bytes back too.
      const d = openStream(client);
      d.call.write(headers());
      assert.ok((await d.next()).request_headers);
      d.call.write(chunk(30_000, false));
      assert.ok((await d.next()).request_body);
      assert.equal(h.server.runtime.bodyBudget.inFlight, 30_000);
      d.call.cancel();
      for (let i = 0; i < 100 && h.server.runtime.bodyBudget.inFlight !== 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(h.server.runtime.bodyBudget.inFlight, 0, 'a cancelled stream releases its bytes');
      for (const s of [a, b, c]) s.call.end();
    } finally {
      client.close();
      await h.close();
    }
  });

  it('the budget is validated: a domain body limit above it is an error', async () => {
    const fx = await createMeshFixture();
    try {
      const yaml = policyYaml(BUDGET_DOMAINS.replace('max_body_bytes: 65536', 'max_body_bytes: 200000'), '  server:\n    max_inflight_body_bytes: 100000\n');
      await writeFile(fx.policyFile, yaml);
      await assert.rejects(loadPolicyFile(fx.policyFile), (e: unknown) => e instanceof ConfigError && /max_inflight_body_bytes/.test(e.message));
      await writeFile(fx.policyFile, policyYaml(BUDGET_DOMAINS, '  server:\n    max_inflight_body_bytes: 1000\n'));
      await assert.rejects(loadPolicyFile(fx.policyFile), ConfigError);
    } finally {
      await fx.cleanup();
    }
  });
});

async function slowJwks(text: string, delayMs: number) {
  const server: Server = createServer((_req, res) => {
    setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end(text);
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

interface ExplainView {
  decision: string;
  reason: string;
  steps: Array<{ phase: string; outcome: string; detail: string }>;
}

function explain(address: string, check: unknown): Promise<ExplainView> {
  const admin = new (loadServices().Admin)(address, grpc.credentials.createInsecure()) as unknown as { Explain: Function; close(): void };
  return new Promise<ExplainView>((resolve, reject) =>
    admin.Explain({ check }, { deadline: Date.now() + 10_000 }, (err: Error | null, res: ExplainView) => (err ? reject(err) : resolve(res))),
  ).finally(() => admin.close());
}

describe('Explain goes through the Check admission limits (finding 10)', () => {
  it('oversized headers: Explain answers payload_too_large without evaluating', async () => {
    const h = await startHarness(policyYaml(DEFAULT_DOMAINS, '  server:\n    max_request_header_bytes: 8192\n'));
    try {
      const token = await h.fx.token({ agent: 'big', role: 'RETRIEVER' });
      assert.equal((await explain(h.server.address, envoyCheckRequest({ token }))).decision, 'allow');
      const res = await explain(h.server.address, envoyCheckRequest({ token, headers: { 'x-padding': 'p'.repeat(9000) } }));
      assert.equal(res.decision, 'deny');
      assert.equal(res.reason, 'payload_too_large');
      assert.deepEqual(res.steps.map((s) => s.phase), ['classify'], 'refused before any step ran');
    } finally {
      await h.close();
    }
  });

  it('Explain shares the in-flight bound with Check: beyond max_concurrent_checks it is denied overloaded at once', async () => {
    const fx = await createMeshFixture(policyYaml(DEFAULT_DOMAINS, '  server:\n    max_concurrent_checks: 1\n'));
    const jwks = await slowJwks(await readFile(fx.policy.identity.jwksFile!, 'utf8'), 1500);
    await writeFile(fx.policyFile, (await readFile(fx.policyFile, 'utf8')).replace('jwks_file: keys/issuer.jwks.json', `jwks_uri: ${jwks.url}`));
    const s = await startTestServer(fx.policyFile);
    const client = new CheckClient(s.address);
    try {
      const token = await fx.token({ agent: 'held', role: 'RETRIEVER' });
      // A Check waits for the slow JWKS and holds the only slot.
      const held = client.check(envoyCheckRequest({ token }));
      for (let i = 0; i < 500 && currentLoad(s.runtime).checks === 0; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(currentLoad(s.runtime).checks, 1);
      const res = await explain(s.address, envoyCheckRequest({ token }));
      assert.equal(res.decision, 'deny');
      assert.equal(res.reason, 'overloaded');
      // The held Check was admitted (it is answered by its own evaluation, not shed).
      assert.notEqual(denyReason(await held), 'overloaded');
      assert.equal(currentLoad(s.runtime).checks, 0);
      // With the slot free Explain evaluates again (it gets past admission to the credential).
      const after = await explain(s.address, envoyCheckRequest({ token: 'not-a-jwt' }));
      assert.equal(after.reason, 'invalid_credential');
      assert.ok(after.steps.some((st) => st.phase === 'identify'));
    } finally {
      client.close();
      await s.close();
      await jwks.close();
      await fx.cleanup();
    }
  });
});
