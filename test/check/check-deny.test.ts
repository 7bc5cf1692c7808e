import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../src/envoy/protos.js';
import { REASONS } from '../../src/policy/reasons.js';
import { TRUSTED } from '../support/mesh-fixture.js';
import { CALLER_SPIFFE, deniedHttpStatus, denyReason, envoyCheckRequest, type CheckResponseView, useCheckServer } from '../support/envoy-check.js';

const h = useCheckServer();

function assertDeny(res: CheckResponseView, reason: keyof typeof REASONS): void {
  assert.equal(denyReason(res), reason, `expected deny ${reason}, got ${JSON.stringify(res.status)} ${res.denied_response?.body}`);
  assert.equal(res.status.code, REASONS[reason].grpc);
  assert.equal(deniedHttpStatus(res), REASONS[reason].grpc === 16 ? 401 : 403);
  assert.deepEqual(JSON.parse(res.denied_response!.body), { error: REASONS[reason].message, reason });
  assert.equal(res.ok_response ?? null, null);
  for (const h of res.denied_response!.headers) assert.equal(h.append?.value, false);
}

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('Check denies with the contract reason codes', () => {
  it('no_policy: unknown context domain, and no match', async () => {
    const token = await h.fx.token({ agent: 'a', role: 'RETRIEVER' });
    assertDeny(await h.client.check(envoyCheckRequest({ token, domain: 'nope' })), 'no_policy');
    assertDeny(await h.client.check(envoyCheckRequest({ token, host: 'unknown.svc', path: '/x' })), 'no_policy');
    // A client header can never choose the domain.
    assertDeny(await h.client.check(envoyCheckRequest({ token, host: 'unknown.svc', headers: { 'x-mesh-domain': 'agent_memory' } })), 'no_policy');
  });

  it('missing_credential: no header, empty bearer, another scheme', async () => {
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory' })), 'missing_credential');
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', authorization: 'Bearer ' })), 'missing_credential');
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', authorization: 'Basic dXNlcjpwdw==' })), 'missing_credential');
  });

  it('invalid_credential: non-JWT bearer, alg none, HMAC with the public key, tampered, foreign issuer key', async () => {
    const token = await h.fx.token({ agent: 'a', role: 'RETRIEVER' });
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: 'not-a-jwt' })), 'invalid_credential');
    const claims = { sub: 'a', role: 'RETRIEVER', iss: 'https://issuer.test', aud: 'agent-mesh', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600 };
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.` })), 'invalid_credential');
    const publicJwks = await readFile(h.fx.policy.identity.jwksFile!, 'utf8');
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: JSON.parse(publicJwks).keys[0].kid }).sign(new TextEncoder().encode(publicJwks));
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: hs })), 'invalid_credential');
    const [head, , sig] = token.split('.');
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: `${head}.${b64({ ...claims, role: 'ORCHESTRATOR' })}.${sig}` })), 'invalid_credential');
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: 'x'.repeat(17_000) })), 'invalid_credential');
  });

  it('expired_credential and credential_too_old', async () => {
    const expired = await h.fx.token({ agent: 'a', role: 'RETRIEVER', ttlMs: 60_000, iatOffsetMs: -120_000 });
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: expired })), 'expired_credential');
    // Valid for an hour but issued 2 minutes ago; sealed_memory allows 60 s (+5 s skew).
    const old = await h.fx.token({ agent: 'a', role: 'ANALYST', ttlMs: 3_600_000, iatOffsetMs: -120_000, attestation: TRUSTED });
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'sealed_memory', token: old })), 'credential_too_old');
  });

  it('role_not_allowed: wrong role and no role', async () => {
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'coordination', token: await h.fx.token({ agent: 'a', role: 'RETRIEVER' }) })), 'role_not_allowed');
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'coordination', token: await h.fx.token({ agent: 'a', role: '' }) })), 'role_not_allowed');
  });

  it('attestation_failed: missing and untrusted measurement', async () => {
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'sealed_memory', token: await h.fx.token({ agent: 'a', role: 'ANALYST' }) })), 'attestation_failed');
    const untrusted = await h.fx.token({ agent: 'a', role: 'ANALYST', attestation: 'sha256:' + 'ff'.repeat(32) });
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'sealed_memory', token: untrusted })), 'attestation_failed');
  });

  it('identity_mismatch: a SPIFFE-bound token replayed from another workload', async () => {
    const bound = await h.fx.token({ agent: 'a', role: 'RETRIEVER', spiffe: CALLER_SPIFFE });
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: bound, principal: 'spiffe://cluster.local/ns/agents/sa/evil' })), 'identity_mismatch');
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: bound, principal: '' })), 'identity_mismatch');
    const ok = await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token: bound }));
    assert.equal(ok.status.code, 0);
  });

  it('bytes that are not a CheckRequest get a deny response, not a gRPC error', async () => {
    const raw = new grpc.Client(h.server.address, grpc.credentials.createInsecure());
    const Authz = loadServices().Authorization;
    const decode = Authz.service.Check!.responseDeserialize;
    const res = await new Promise<CheckResponseView>((resolve, reject) =>
      raw.makeUnaryRequest('/envoy.service.auth.v3.Authorization/Check', (b: Buffer) => b, (b: Buffer) => decode(b) as CheckResponseView, Buffer.from([0xff, 0xff, 0xff, 0x0f, 0x01]), (e, r) => (e ? reject(e) : resolve(r!))),
    );
    raw.close();
    assertDeny(res, 'no_policy');
  });

  it('garbled requests deny and the server keeps serving', async () => {
    assertDeny(await h.client.check({}), 'no_policy');
    assertDeny(await h.client.check({ attributes: {} }), 'no_policy');
    assertDeny(await h.client.check({ attributes: { request: { http: {} } } }), 'no_policy');
    const token = await h.fx.token({ agent: 'a', role: 'RETRIEVER' });
    // A 64 KiB header (more than Envoy itself would forward) is refused with a reason, not processed.
    assertDeny(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token, headers: { 'x-big': 'v'.repeat(64 * 1024) } })), 'payload_too_large');
    assert.equal((await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token }))).status.code, 0, 'still serving');
    // CR/LF in a value (only a forged request could carry it) is never echoed anywhere.
    const crlf = await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token, headers: { 'x-agent-role': 'ADMIN\r\nx-evil: 1' } }));
    assert.equal(crlf.status.code, 0);
    assert.ok(crlf.ok_response!.headers.every((h) => !/[\r\n]/.test(h.header.value)));
  });
});
