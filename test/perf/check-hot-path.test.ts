import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { CredentialCache } from '../../src/identity/credential-cache.js';
import { bindDecision, verifyBinding } from '../../src/policy/binding.js';

/**
 * The Check hot path's cheaper primitives compute exactly what the plainer code they replaced did:
 * cache keys and binding MACs are compared across processes and restarts (workers, ext_proc), so a
 * different value would be a behaviour change, not an optimisation.
 */
describe('Check hot-path primitives', () => {
  it('credential cache keys are the SHA-256 base64url digest of the token', () => {
    for (const token of ['header.payload.signature', `eyJ${'x'.repeat(600)}.${'y'.repeat(86)}`, 'ünïcødé.tøkén.✓', '']) {
      assert.equal(CredentialCache.keyOf(token), createHash('sha256').update(token).digest('base64url'));
    }
  });

  it('bindDecision is HMAC-SHA256 over the documented, length-prefixed fields, and verifies', () => {
    const key = randomBytes(32);
    const now = Date.now();
    for (const agent of ['agent-7', 'p_3kq9v2m1x8', 'agënt-ü']) {
      const f = { decisionId: randomUUID(), domain: 'agent_memory', role: 'RETRIEVER', agent, host: 'memory.agents.svc', path: '/v1/memory/n?x=1', method: 'PUT', principal: 'spiffe://mesh/ns/a/sa/r' };
      const header = bindDecision(key, f, now);
      const issued = Math.floor(now).toString(36);
      const fields = [f.decisionId, f.domain, f.role, f.agent, f.host, f.method, f.principal, f.path].map((v) => `${v.length}:${v}`);
      const expected = createHmac('sha256', key).update(`v2\n${issued}\n${fields.join('\n')}`).digest('base64url');
      assert.equal(header, `v2.${issued}.${expected}`);
      assert.equal(verifyBinding(key, header, f, now), true);
      assert.equal(verifyBinding(key, header, { ...f, agent: `${agent}x` }, now), false);
    }
  });
});
