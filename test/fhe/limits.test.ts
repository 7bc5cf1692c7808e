import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadPolicyFile } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { loadServices } from '../../src/envoy/protos.js';
import { checkedHeaders } from '../support/extproc-server.js';
import { envoyCheckRequest, setHeaders } from '../support/envoy-check.js';
import { createMeshFixture, policyYaml } from '../support/mesh-fixture.js';
import { startHarness, type SecurityHarness } from '../security/support.js';

/**
 * Issue 17, finding 4: a 1.4 KB body `[[0],[1],…]` became a 55 MB body and blocked a worker for a
 * second. Bodies are now bounded in ciphertexts and output bytes per domain, and SEAL runs on its own
 * thread, so a Check on the same process is answered while a large encryption is still running.
 */
const DOMAINS = `
    - name: fin
      tier: FHE
      allowed_roles: [ANALYST]
      match: {hosts: ["fin.svc"]}
    - name: fin_big
      tier: FHE
      allowed_roles: [ANALYST]
      max_body_bytes: 1048576
      fhe: {max_ciphertexts: 400, max_output_bytes: 268435456}
    - name: fin_tight
      tier: FHE
      allowed_roles: [ANALYST]
      fhe: {max_ciphertexts: 100, max_output_bytes: 1000000}
    - name: agent_memory
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER]
      match: {hosts: ["memory.agents.svc"]}
`;

type Answer = Record<string, unknown> & {
  immediate_response?: { status: { code: string | number }; body: Buffer | string; headers: { set_headers: Array<{ header: { key: string; raw_value?: Buffer; value?: string } }> } };
  request_body?: { response: { body_mutation?: { body?: Buffer } } };
};
type Duplex = grpc.ClientDuplexStream<object, Answer>;

function reasonOf(a: Answer): string | undefined {
  const h = a.immediate_response?.headers.set_headers.find((x) => x.header.key === 'x-mesh-reason')?.header;
  return h ? (h.raw_value ? Buffer.from(h.raw_value).toString() : h.value) : undefined;
}

describe('FHE resource bounds and the SEAL thread (finding 4)', () => {
  let h: SecurityHarness;
  let client: { Process(): Duplex; close(): void };

  before(async () => {
    h = await startHarness(policyYaml(DOMAINS));
    // A large answer is what the unfixed server produced; let the test see it rather than a size error.
    client = new (loadServices().ExternalProcessor)(h.server.address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 512 * 1024 * 1024,
    }) as unknown as { Process(): Duplex; close(): void };
  });
  after(async () => {
    client?.close();
    await h?.close();
  });

  /** Sends one request body through ext_proc for `domain`; resolves with the body answer. */
  function exchange(domain: string, body: string): { answer: Promise<Answer> } {
    const call = client.Process();
    call.on('error', () => undefined);
    const key = h.server.runtime.pseudonyms.bindingKey();
    const answers: Answer[] = [];
    const answer = new Promise<Answer>((resolve, reject) => {
      call.on('data', (a: Answer) => {
        answers.push(a);
        if (answers.length === 2) {
          resolve(a);
          call.end();
        }
      });
      call.on('error', reject);
    });
    const headers = [[':path', '/v1/fin'], [':method', 'POST'], ['content-type', 'application/json'], ...checkedHeaders(domain, { method: 'POST', path: '/v1/fin' }, { key, role: 'ANALYST', agent: 'agent-fhe' })];
    call.write({ request_headers: { headers: { headers: headers.map(([k, v]) => ({ key: k, raw_value: Buffer.from(v!) })) }, end_of_stream: false } });
    call.write({ request_body: { body: Buffer.from(body), end_of_stream: true } });
    return { answer };
  }

  it('the amplification body [[0],[1],…] is refused 413 payload_too_large under the default bounds', async () => {
    const body = JSON.stringify(Array.from({ length: 256 }, (_, i) => [i]));
    assert.ok(body.length < 1500, `the attack body is small (${body.length} bytes)`);
    const a = await exchange('fin', body).answer;
    assert.ok(a.immediate_response, `refused, not transformed (got ${Object.keys(a).join(',')})`);
    const code = a.immediate_response.status.code;
    assert.ok(code === 413 || code === 'PayloadTooLarge', String(code));
    assert.equal(reasonOf(a), 'payload_too_large');
    // Within the default bounds the same shape is protected as before.
    const ok = await exchange('fin', JSON.stringify(Array.from({ length: 4 }, (_, i) => [i]))).answer;
    const replaced = ok.request_body?.response.body_mutation?.body;
    assert.ok(replaced, 'a small body is protected');
    assert.equal((JSON.parse(Buffer.from(replaced).toString()) as unknown[]).length, 4);
  });

  it('max_output_bytes refuses before encrypting when the count cannot fit, and while encrypting when the bytes pass it', async () => {
    // 8 ciphertexts cannot fit 1,000,000 bytes: refused before any SEAL work.
    // (Each inner array is its own ciphertext; a flat array packs 4096 values into one.)
    const rows = (n: number) => JSON.stringify({ v: Array.from({ length: n }, (_, i) => [i]) });
    const early = await exchange('fin_tight', rows(8)).answer;
    assert.equal(reasonOf(early), 'payload_too_large');
    // 6 might (6 × the smallest ciphertext), but real ciphertexts are larger: refused on the way.
    const late = await exchange('fin_tight', rows(6)).answer;
    assert.equal(reasonOf(late), 'payload_too_large');
    // Two ciphertexts fit.
    const fits = await exchange('fin_tight', rows(2)).answer;
    assert.ok(fits.request_body?.response.body_mutation?.body, 'within the bound the body is protected');
  });

  it('a Check answered during a large FHE encryption completes before the encryption ends', async () => {
    // Warm the SEAL thread (WASM, keys) so the big job below is encryption work, not loading.
    assert.ok((await exchange('fin_big', '{"w": 1}').answer).request_body);
    const token = await h.fx.token({ agent: 'agent-check', role: 'RETRIEVER' });
    const big = exchange('fin_big', JSON.stringify({ rows: Array.from({ length: 200 }, (_, i) => [i]) })).answer;
    // Give the server a moment to take the body and start encrypting it (on the unfixed server the
    // event loop is then blocked until the encryption ends, and this Check is only read after it).
    await new Promise((r) => setTimeout(r, 300));
    const res = await h.client.check(envoyCheckRequest({ token }));
    assert.equal(res.status.code, 0, 'the Check is allowed');
    const a = await big;
    assert.ok(a.request_body?.response.body_mutation?.body, 'the large body is protected in the end');
    // The order of the server's own records says what happened first: the Check's decision (recorded
    // as it is answered) and the end of the encryption (the body is recorded as soon as it is
    // protected). Both domains audit FULL_MESH, so both records are durable before the answers.
    const decisionId = setHeaders(res).get('x-mesh-decision-id');
    const records = (await readFile(h.fx.policy.audit.file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; domain: string; decision_id: string; payload_bytes?: number });
    const checkAt = records.findIndex((r) => r.event === 'authz.check' && r.decision_id === decisionId);
    const bigAt = records.findIndex((r) => r.event === 'extproc.request_body' && r.domain === 'fin_big' && (r.payload_bytes ?? 0) > 1000);
    assert.ok(checkAt >= 0 && bigAt >= 0, 'both records are written');
    assert.ok(checkAt < bigAt, 'the Check was decided before the encryption ended');
  });
});

describe('FHE bounds in the policy', () => {
  it('are validated', async () => {
    const fx = await createMeshFixture();
    try {
      for (const bad of ['{max_ciphertexts: 0}', '{max_ciphertexts: 5000}', '{max_output_bytes: 1000}', '{max_output_bytes: "big"}']) {
        await writeFile(fx.policyFile, policyYaml(`\n    - name: f\n      tier: FHE\n      allowed_roles: [A]\n      fhe: ${bad}\n`));
        await assert.rejects(loadPolicyFile(fx.policyFile), ConfigError, bad);
      }
      await writeFile(fx.policyFile, policyYaml(`\n    - name: f\n      tier: FHE\n      allowed_roles: [A]\n      fhe: {max_ciphertexts: 8, max_output_bytes: 4194304}\n`));
      const { policy } = await loadPolicyFile(fx.policyFile);
      assert.deepEqual([policy.domains[0]!.fhe?.maxCiphertexts, policy.domains[0]!.fhe?.maxOutputBytes], [8, 4194304]);
      await writeFile(fx.policyFile, policyYaml(`\n    - name: f\n      tier: FHE\n      allowed_roles: [A]\n`));
      const defaults = (await loadPolicyFile(fx.policyFile)).policy.domains[0]!.fhe;
      assert.deepEqual([defaults?.maxCiphertexts, defaults?.maxOutputBytes], [32, 16 * 1024 * 1024]);
    } finally {
      await fx.cleanup();
    }
  });
});
