import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint, exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { CALLER_SPIFFE, deniedHttpStatus, denyReason, envoyCheckRequest } from '../support/envoy-check.js';
import { DEFAULT_DOMAINS, policyYaml } from '../support/mesh-fixture.js';
import { hmacToken, isAllow, startHarness, unsignedToken, type SecurityHarness } from './support.js';

const REVOKED_JTI = 'jti-revoked-0001';
const REVOKED_AGENT = 'agent-gone';

/**
 * Every classic JWT attack, sent through the real server as Envoy would send it. Each must end in a
 * deny with the right reason and status, and no deny body may echo the token.
 */
describe('JWT attack matrix (real gRPC server)', () => {
  let h: SecurityHarness;
  let attacker: { jwk: JWK; kid: string; key: CryptoKey };
  let attackerJwks: Server;
  let jwksHits = 0;
  let jwksUrl = '';

  before(async () => {
    h = await startHarness(policyYaml(DEFAULT_DOMAINS, `  revocation:\n    token_ids: ["${REVOKED_JTI}"]\n    agents: ["${REVOKED_AGENT}"]\n`));
    const pair = await generateKeyPair('ES256', { extractable: true });
    const pub = await exportJWK(pair.publicKey);
    const kid = await calculateJwkThumbprint(pub);
    attacker = { jwk: { ...pub, kid, alg: 'ES256', use: 'sig' }, kid, key: pair.privateKey };
    // A JWKS the attacker controls: the PEP must never fetch it, whatever the token's header says.
    attackerJwks = createServer((_req, res) => {
      jwksHits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [attacker.jwk] }));
    });
    await new Promise<void>((r) => attackerJwks.listen(0, '127.0.0.1', () => r()));
    jwksUrl = `http://127.0.0.1:${(attackerJwks.address() as AddressInfo).port}/jwks.json`;
  });
  after(async () => {
    await h.close();
    await new Promise<void>((r) => attackerJwks.close(() => r()));
  });

  const attackerSign = (payload: Record<string, unknown>, header: Record<string, unknown> = {}) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: attacker.kid, ...header }).sign(attacker.key);

  async function expectDeny(token: string, reason: string, opts: { principal?: string } = {}) {
    const res = await h.client.check(envoyCheckRequest({ token, principal: opts.principal }));
    assert.equal(isAllow(res), false, `expected a deny (${reason})`);
    assert.equal(denyReason(res), reason);
    assert.equal(deniedHttpStatus(res), reason === 'role_not_allowed' || reason === 'identity_mismatch' || reason === 'revoked' ? 403 : 401);
    assert.equal(res.status.code, reason === 'role_not_allowed' || reason === 'identity_mismatch' || reason === 'revoked' ? 7 : 16);
    const body = res.denied_response?.body ?? '';
    for (const part of token.split('.')) if (part.length >= 8) assert.ok(!body.includes(part), 'deny body echoes the token');
    return res;
  }

  it('control: a correctly signed credential is allowed', async () => {
    const res = await h.client.check(envoyCheckRequest({ token: await h.sign(h.claims()) }));
    assert.ok(isAllow(res));
  });

  it('alg none is refused', async () => {
    await expectDeny(unsignedToken(h.claims()), 'invalid_credential');
    await expectDeny(unsignedToken(h.claims()).slice(0, -1), 'invalid_credential');
  });

  it('HS256 signed with the issuer public key (algorithm confusion) is refused', async () => {
    const { d: _d, ...publicJwk } = h.issuerJwk as JWK & { d?: string };
    const pem = await exportSPKI((await importJWK(publicJwk, h.issuerJwk.alg)) as CryptoKey);
    for (const secret of [JSON.stringify(publicJwk), pem, publicJwk.x ?? 'x']) {
      await expectDeny(hmacToken(h.claims(), secret, { kid: h.issuerJwk.kid }), 'invalid_credential');
    }
  });

  it('kid injection and unknown kids are refused', async () => {
    for (const kid of ['../../../../etc/passwd', "' OR '1'='1", 'x'.repeat(2000), '\u0000', h.issuerJwk.kid]) {
      // Signed by the attacker's key under a kid of the attacker's choosing (including the real kid).
      await expectDeny(await attackerSign(h.claims(), { kid }), 'invalid_credential');
    }
    await expectDeny(await attackerSign(h.claims()), 'invalid_credential');
  });

  it('jku, x5u and embedded jwk headers are ignored (never fetched, never trusted)', async () => {
    await expectDeny(await attackerSign(h.claims(), { jku: jwksUrl }), 'invalid_credential');
    await expectDeny(await attackerSign(h.claims(), { x5u: jwksUrl }), 'invalid_credential');
    await expectDeny(await attackerSign(h.claims(), { jwk: attacker.jwk }), 'invalid_credential');
    assert.equal(jwksHits, 0, 'the PEP fetched a URL named by the token');
    // A real token carrying a jku still verifies against the configured keys only (and is not fetched).
    const res = await h.client.check(envoyCheckRequest({ token: await h.sign(h.claims(), { jku: jwksUrl }) }));
    assert.ok(isAllow(res));
    assert.equal(jwksHits, 0);
  });

  it('a tampered payload under a valid signature is refused', async () => {
    const [hd, , sig] = (await h.sign(h.claims())).split('.');
    const forged = `${hd}.${Buffer.from(JSON.stringify(h.claims({ role: 'ORCHESTRATOR' }))).toString('base64url')}.${sig}`;
    await expectDeny(forged, 'invalid_credential');
  });

  it('lifetime: expired, not yet valid, issued in the future, too old', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectDeny(await h.sign(h.claims({ iat: now - 900, nbf: now - 900, exp: now - 60 })), 'expired_credential');
    await expectDeny(await h.sign(h.claims({ nbf: now + 600 })), 'invalid_credential');
    await expectDeny(await h.sign(h.claims({ iat: now + 600, nbf: now })), 'invalid_credential');
    // Domain max age is the global 600 s; this one was issued 20 minutes ago and is still unexpired.
    await expectDeny(await h.sign(h.claims({ iat: now - 1200, nbf: now - 1200, exp: now + 600 })), 'credential_too_old');
    await expectDeny(await h.sign(h.claims({ exp: undefined })), 'invalid_credential');
    await expectDeny(await h.sign(h.claims({ iat: undefined })), 'invalid_credential');
  });

  it('wrong issuer or audience, missing subject are refused', async () => {
    await expectDeny(await h.sign(h.claims({ iss: 'https://evil.example' })), 'invalid_credential');
    await expectDeny(await h.sign(h.claims({ aud: 'another-mesh' })), 'invalid_credential');
    await expectDeny(await h.sign(h.claims({ aud: [] })), 'invalid_credential');
    await expectDeny(await h.sign(h.claims({ sub: undefined })), 'invalid_credential');
    await expectDeny(await h.sign(h.claims({ sub: '' })), 'invalid_credential');
  });

  it('missing role, role as an array or an object is not a role', async () => {
    await expectDeny(await h.sign(h.claims({ role: undefined })), 'role_not_allowed');
    await expectDeny(await h.sign(h.claims({ role: ['RETRIEVER'] })), 'role_not_allowed');
    await expectDeny(await h.sign(h.claims({ role: { name: 'RETRIEVER' } })), 'role_not_allowed');
    await expectDeny(await h.sign(h.claims({ role: 'retriever' })), 'role_not_allowed');
    await expectDeny(await h.sign(h.claims({ role: '' })), 'role_not_allowed');
  });

  it('a workload-bound token replayed from another principal is refused', async () => {
    const token = await h.sign(h.claims({ spiffe_id: CALLER_SPIFFE }));
    assert.ok(isAllow(await h.client.check(envoyCheckRequest({ token }))));
    await expectDeny(token, 'identity_mismatch', { principal: 'spiffe://cluster.local/ns/attacker/sa/default' });
    await expectDeny(token, 'identity_mismatch', { principal: `${CALLER_SPIFFE}-2` });
    // No principal at all (plaintext hop): still bound, still refused.
    const res = await h.client.check({ ...envoyCheckRequest({ token }), attributes: { ...envoyCheckRequest({ token }).attributes, source: {} } });
    assert.equal(denyReason(res), 'identity_mismatch');
  });

  it('revoked token id and revoked agent are refused', async () => {
    await expectDeny(await h.sign(h.claims({ jti: REVOKED_JTI })), 'revoked');
    await expectDeny(await h.sign(h.claims({ sub: REVOKED_AGENT })), 'revoked');
  });

  it('malformed bearer values are refused without a gRPC error', async () => {
    const good = await h.sign(h.claims());
    for (const authorization of [`Bearer ${good}, Bearer ${good}`, `Basic ${good}`, `Bearer`, `Bearer ${'a'.repeat(20_000)}`, `Bearer ${good}.extra`, `Bearer a.b.c`]) {
      const res = await h.client.check(envoyCheckRequest({ authorization }));
      assert.equal(isAllow(res), false, authorization.slice(0, 20));
      assert.ok(['missing_credential', 'invalid_credential'].includes(denyReason(res) ?? ''), denyReason(res));
    }
  });
});
