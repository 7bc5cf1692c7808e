/**
 * Every Check deny reason a request can earn, as the client really sees it through Envoy 1.40: Envoy's
 * local reply built from mesh-pep's `denied_response` (status, JSON body, `x-mesh-reason`), passed
 * unchanged through ext_proc's response path, and nothing at the upstream.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { h1, h2, type ClientResponse } from './support/client.js';
import { bearer, REVOKED_AGENT, startStack, type Stack } from './support/stack.js';

let s: Stack;

before(async () => {
  s = await startStack();
});

after(async () => {
  await s?.stop();
});

async function expectDeny(res: ClientResponse, status: number, reason: string, mark: number): Promise<void> {
  const detail = `${res.status} ${JSON.stringify(res.headers)} ${res.text()}`;
  assert.equal(res.status, status, detail);
  assert.equal(res.headers['x-mesh-reason'], reason, detail);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, detail);
  const body = res.json<{ reason: string; error: string }>();
  assert.equal(body.reason, reason);
  assert.equal(typeof body.error, 'string');
  assert.deepEqual(Object.keys(body).sort(), ['error', 'reason']);
  assert.equal(s.upstream.since(mark).length, 0, 'nothing may reach the upstream');
}

test('no_policy: a route that names no domain, on a host no domain matches', async () => {
  const mark = s.upstream.received.length;
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  await expectDeny(await h1(s.port, { path: '/nowhere/at/all', headers: bearer(token) }), 403, 'no_policy', mark);
});

test('missing_credential over HTTP/1.1 and HTTP/2', async () => {
  const mark = s.upstream.received.length;
  await expectDeny(await h1(s.port, { method: 'POST', path: '/coordination/tasks', body: '{"task":"plan"}', headers: { 'content-type': 'application/json' } }), 401, 'missing_credential', mark);
  await expectDeny(await h2(s.port, { path: '/memory/store/a' }), 401, 'missing_credential', mark);
});

test('invalid_credential: garbage, a foreign signing key, a non-Bearer scheme', async () => {
  const mark = s.upstream.received.length;
  await expectDeny(await h1(s.port, { path: '/coordination/tasks', headers: { authorization: 'Bearer not.a.jwt' } }), 401, 'invalid_credential', mark);
  const { privateKey } = await generateKeyPair('ES256');
  const foreign = await new SignJWT({ role: 'ORCHESTRATOR' })
    .setProtectedHeader({ alg: 'ES256', kid: 'attacker' })
    .setSubject('planner-1')
    .setIssuer(s.policy.identity.issuer!)
    .setAudience(s.policy.identity.audiences[0]!)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey);
  await expectDeny(await h2(s.port, { path: '/coordination/tasks', headers: bearer(foreign) }), 401, 'invalid_credential', mark);
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const basic = await h1(s.port, { path: '/coordination/tasks', headers: { authorization: `Basic ${token}` } });
  assert.equal(basic.status, 401, basic.text());
  assert.match(basic.headers['x-mesh-reason'] ?? '', /^(missing|invalid)_credential$/);
  assert.equal(s.upstream.since(mark).length, 0);
});

test('expired_credential', async () => {
  const mark = s.upstream.received.length;
  const token = await s.token('planner-1', 'ORCHESTRATOR', { now: Date.now() - 3_600_000, ttlMs: 60_000 });
  await expectDeny(await h1(s.port, { path: '/coordination/tasks', headers: bearer(token) }), 401, 'expired_credential', mark);
});

test('credential_too_old: issued 11 minutes ago, still valid, past the 10-minute rotation interval', async () => {
  const mark = s.upstream.received.length;
  const token = await s.token('planner-1', 'ORCHESTRATOR', { now: Date.now() - 11 * 60_000, ttlMs: 3_600_000 });
  await expectDeny(await h1(s.port, { path: '/coordination/tasks', headers: bearer(token) }), 401, 'credential_too_old', mark);
});

test('role_not_allowed: an EXECUTOR at the memory store', async () => {
  const mark = s.upstream.received.length;
  const token = await s.token('executor-1', 'EXECUTOR');
  await expectDeny(await h1(s.port, { method: 'PUT', path: '/memory/store/k', headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{"note":"x"}' }), 403, 'role_not_allowed', mark);
});

test('attestation_failed: no attestation, then an untrusted measurement, at the enclave', async () => {
  const mark = s.upstream.received.length;
  const plain = await s.token('analyst-1', 'ANALYST');
  await expectDeny(await h1(s.port, { path: '/inference/enclave', headers: bearer(plain) }), 403, 'attestation_failed', mark);
  const { mintPolicyToken } = await import('../src/identity/dev-issuer.js');
  const untrusted = await mintPolicyToken(s.policy, { agentId: 'analyst-1', role: 'ANALYST', ttlMs: 60_000, attestation: `sha256:${'ff'.repeat(32)}` });
  await expectDeny(await h2(s.port, { path: '/models/model/score', headers: bearer(untrusted) }), 403, 'attestation_failed', mark);
});

test('identity_mismatch: a SPIFFE-bound credential over a connection without that principal', async () => {
  const mark = s.upstream.received.length;
  const token = await s.token('planner-1', 'ORCHESTRATOR', { spiffe: 'spiffe://cluster.local/ns/agents/sa/planner' });
  await expectDeny(await h1(s.port, { path: '/coordination/tasks', headers: bearer(token) }), 403, 'identity_mismatch', mark);
});

test('revoked: a revoked agent with an otherwise valid credential', async () => {
  const mark = s.upstream.received.length;
  const token = await s.token(REVOKED_AGENT, 'ORCHESTRATOR');
  await expectDeny(await h1(s.port, { path: '/coordination/tasks', headers: bearer(token) }), 403, 'revoked', mark);
});

test('zone_denied: a caller in no trust zone at a segmented domain', async () => {
  const mark = s.upstream.received.length;
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  await expectDeny(await h1(s.port, { path: '/segmented/x', headers: bearer(token) }), 403, 'zone_denied', mark);
});

test('a client header never picks the domain: x-mesh-domain on an unrouted path is still no_policy', async () => {
  const mark = s.upstream.received.length;
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  await expectDeny(await h1(s.port, { path: '/nowhere', headers: { ...bearer(token), 'x-mesh-domain': 'coordination' } }), 403, 'no_policy', mark);
});
