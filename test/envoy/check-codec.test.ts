import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeCheckRequest, encodeCheckResponse, encodeCheckResponseGeneric } from '../../src/envoy/check/codec.js';
import { checkRequestToAttributes } from '../../src/envoy/check/request.js';
import { decisionToCheckResponse } from '../../src/envoy/check/response.js';
import { encodeCheckResponseFast } from '../../src/envoy/check/response-encoder.js';
import { checkServiceDefinition } from '../../src/envoy/check/service.js';
import { envoyCheckRequest } from '../../src/envoy/peer/check-request.js';
import { loadServices } from '../../src/envoy/protos.js';
import { UNDECODABLE } from '../../src/envoy/safe-deserialize.js';
import type { AllowDecision, Decision } from '../../src/policy/decision.js';
import { REASONS, type ReasonCode } from '../../src/policy/reasons.js';

/**
 * Check's own codec (src/envoy/check/codec.ts) against proto-loader's generic one, which is what every
 * other test, the CLI and Envoy-protos clients use: the response bytes must be identical, and a decoded
 * request must translate to the same attributes.
 */
const loader = loadServices().Authorization.service.Check!;
const loaderSerialize = (o: unknown) => loader.responseSerialize(o) as Buffer;
const loaderDeserialize = (b: Buffer) => loader.requestDeserialize(b);
const loaderRequestBytes = (o: object) => loader.requestSerialize(o) as Buffer;

function allow(over: Partial<AllowDecision> & { agent: string; masking: boolean }): AllowDecision {
  const id = randomUUID();
  const agentHeader = over.masking ? 'x-agent-pseudonym' : 'x-agent-id';
  return {
    kind: 'allow',
    reason: 'ok',
    decisionId: id,
    domain: 'agent_memory',
    tier: 'RETRIEVAL',
    auditLevel: 'OUTPUT_ONLY',
    agentId: 'agent-7',
    role: 'RETRIEVER',
    steps: [],
    setHeaders: [
      ['x-agent-role', 'RETRIEVER'],
      ['x-mesh-domain', 'agent_memory'],
      ['x-mesh-tier', 'RETRIEVAL'],
      ['x-mesh-decision-id', id],
      [agentHeader, over.agent],
      ['x-mesh-binding', `v1.${Date.now().toString(36)}.${'A'.repeat(43)}`],
    ],
    removeHeaders: over.masking ? ['authorization', 'x-forwarded-for', 'x-forwarded-client-cert', 'x-mesh-old'] : ['authorization'],
    metadata: {
      domain: 'agent_memory',
      tier: 'RETRIEVAL',
      role: 'RETRIEVER',
      decision_id: id,
      [over.masking ? 'agent_pseudonym' : 'agent_id']: over.agent,
    },
    ...over,
  };
}

function deny(reason: ReasonCode): Decision {
  return { kind: 'deny', reason, decisionId: randomUUID(), domain: 'agent_memory', tier: 'RETRIEVAL', auditLevel: 'OUTPUT_ONLY', agentId: undefined, agent: undefined, role: undefined, masking: false, steps: [] };
}

function assertSameBytes(res: object, what: string): void {
  const expected = loaderSerialize(res);
  const fast = encodeCheckResponse(res);
  assert.ok(fast.equals(expected), `${what}: fast encoder bytes differ\n fast ${fast.toString('hex')}\n want ${expected.toString('hex')}`);
  assert.ok(encodeCheckResponseGeneric(res).equals(expected), `${what}: protobufjs encode without fromObject differs`);
  // And what a client built from Envoy's protos reads back is the response that was built.
  assert.deepEqual(loader.responseDeserialize(fast), loader.responseDeserialize(expected));
}

describe('Check response encoder', () => {
  it('allow (plain and masking) encodes to the bytes proto-loader produces', () => {
    assertSameBytes(decisionToCheckResponse(allow({ agent: 'agent-7', masking: false })), 'allow');
    assertSameBytes(decisionToCheckResponse(allow({ agent: 'p_3kq9v2m1x8', masking: true })), 'masking allow');
  });

  it('deny of every reason kind encodes to the bytes proto-loader produces', () => {
    for (const reason of Object.keys(REASONS) as ReasonCode[]) assertSameBytes(decisionToCheckResponse(deny(reason)), `deny ${reason}`);
  });

  it('non-ASCII, 127/128-byte and long values (multi-byte lengths, buffer growth) encode identically', () => {
    for (const agent of ['agënt-ü-日本', 'a'.repeat(127), 'a'.repeat(128), 'é'.repeat(70), 'x'.repeat(20_000), 'ok 👍 emoji', '']) {
      const res = decisionToCheckResponse(allow({ agent, masking: false }));
      assertSameBytes(res, `allow with agent of length ${agent.length}`);
      // The fast path itself, not its fallback, produced these.
      assert.ok(encodeCheckResponseFast(res).equals(loaderSerialize(res)));
    }
  });

  it('falls back to protobufjs for what it does not model, with the same bytes', () => {
    // A lone surrogate: protobufjs and Buffer encode it differently, so the fast path must not.
    const res = decisionToCheckResponse(allow({ agent: 'bad\ud800agent', masking: false }));
    assert.throws(() => encodeCheckResponseFast(res));
    assertSameBytes(res, 'lone surrogate');
    const negative = { status: { code: -1, message: 'x' } };
    assert.throws(() => encodeCheckResponseFast(negative));
    assertSameBytes(negative, 'negative status code');
  });
});

describe('Check request decoder', () => {
  const attrs = (bytes: Buffer) => ({
    fast: checkRequestToAttributes(decodeCheckRequest(bytes)),
    loader: checkRequestToAttributes(loaderDeserialize(bytes)),
  });

  it('translates to the same attributes as proto-loader', () => {
    const cases = [
      envoyCheckRequest({ token: 'a.b.c', domain: 'agent_memory', sidecarHeaders: true }),
      envoyCheckRequest({ host: 'memory.agents.svc:8080', headers: { 'x-Ünïcode': 'välue', 'X-Upper': 'v' }, extensions: { domain: 'd', egress: 'true' } }),
      envoyCheckRequest({ principal: '', destinationPrincipal: '' }),
      { attributes: { request: { http: { header_map: { headers: [{ key: 'authorization', raw_value: Buffer.from('Bearer x.y.z') }, { key: ':path', value: '/p' }] } } } } },
      { attributes: {} },
      {},
    ];
    for (const c of cases) {
      const { fast, loader: want } = attrs(loaderRequestBytes(c));
      assert.deepEqual(fast, want);
    }
  });

  it('tolerates fields it does not know (a newer Envoy) as proto-loader does', () => {
    const base = loaderRequestBytes(envoyCheckRequest({ token: 'a.b.c', domain: 'agent_memory' }));
    // Field 99 (varint 1) and field 100 (length-delimited "hi") at the top level: unknown to these protos.
    const withUnknown = Buffer.concat([base, Buffer.from([0x98, 0x06, 0x01, 0xa2, 0x06, 0x02, 0x68, 0x69])]);
    const { fast, loader: want } = attrs(withUnknown);
    assert.deepEqual(fast, want);
    assert.equal(fast.headers.get('authorization'), 'Bearer a.b.c');
  });

  it('undecodable bytes become UNDECODABLE (a deny in Check), never a throw', () => {
    const def = checkServiceDefinition().Check!;
    for (const bad of [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0x0a, 0x05, 0x01]), Buffer.from([0xff])]) {
      assert.throws(() => loaderDeserialize(bad));
      assert.equal(def.requestDeserialize(bad), UNDECODABLE);
    }
    assert.notEqual(def.requestDeserialize(loaderRequestBytes(envoyCheckRequest({}))), UNDECODABLE);
  });

  it('the served definition uses this codec for Check', () => {
    const def = checkServiceDefinition().Check!;
    const res = decisionToCheckResponse(deny('role_not_allowed'));
    assert.ok((def.responseSerialize(res) as Buffer).equals(loaderSerialize(res)));
    assert.equal(def.path, '/envoy.service.auth.v3.Authorization/Check');
  });
});
