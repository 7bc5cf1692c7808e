import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { CheckClient, denyReason, envoyCheckRequest, startTestServer } from '../support/envoy-check.js';
import { createMeshFixture, policyYaml, type MeshFixture } from '../support/mesh-fixture.js';

/**
 * The verified-credential cache seen from Envoy's side: through the real server over gRPC, a cached
 * credential is never answered past its expiry, past a (reloaded) max age, after revocation or after
 * its signing key left the issuer JWKS. Counts come from `mesh_pep_credential_cache_total`.
 */
const DOMAINS = `
    - name: notes
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER]
      metadata_masking: false
      audit_level: OUTPUT_ONLY
`;

function yaml(maxAge?: number): string {
  const domains = maxAge === undefined ? DOMAINS : DOMAINS + `      max_token_age_ms: ${maxAge}\n`;
  // No clock skew, so expiry is observable within a second.
  return policyYaml(domains).replace('clock_skew_ms: 5000', 'clock_skew_ms: 0');
}

describe('credential cache at the Check level', () => {
  let fx: MeshFixture;
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: CheckClient;
  const lookups = (result: 'hit' | 'miss') => server.runtime.metrics.credentialCache.get({ result });
  const check = async (token: string) => client.check(envoyCheckRequest({ domain: 'notes', token }));

  before(async () => {
    fx = await createMeshFixture(yaml());
    server = await startTestServer(fx.policyFile);
    client = new CheckClient(server.address);
  });
  after(async () => {
    client.close();
    await server.close();
    await fx.cleanup();
  });

  it('a repeated credential is verified once and then served from the cache', async () => {
    const token = await fx.token({ agent: 'agent-hit', role: 'RETRIEVER' });
    const hits = lookups('hit');
    const misses = lookups('miss');
    for (let i = 0; i < 5; i++) assert.equal((await check(token)).status.code, 0);
    assert.equal(lookups('miss') - misses, 1);
    assert.equal(lookups('hit') - hits, 4);
  });

  it('a cached credential is not answered once it expired', async () => {
    // exp is whole seconds (floor of now + ttl), so a 1 s ttl could leave a few ms; 2 s leaves at least 1 s.
    const token = await fx.token({ agent: 'agent-exp', role: 'RETRIEVER', ttlMs: 2000 });
    assert.equal((await check(token)).status.code, 0);
    assert.equal((await check(token)).status.code, 0);
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
    await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 - Date.now()) + 50));
    assert.equal(denyReason(await check(token)), 'expired_credential');
  });

  it('a reload that lowers the max token age applies to cached credentials at once', async () => {
    const token = await fx.token({ agent: 'agent-age', role: 'RETRIEVER', iatOffsetMs: -120_000 });
    assert.equal((await check(token)).status.code, 0);
    assert.equal((await check(token)).status.code, 0);
    await writeFile(fx.policyFile, yaml(60_000));
    assert.equal((await server.runtime.reload()).ok, true);
    assert.equal(denyReason(await check(token)), 'credential_too_old');
    await writeFile(fx.policyFile, yaml());
    assert.equal((await server.runtime.reload()).ok, true);
  });

  it('invalidating a credential (revocation) makes the next Check verify it again', async () => {
    const token = await fx.token({ agent: 'agent-rev', role: 'RETRIEVER' });
    assert.equal((await check(token)).status.code, 0);
    const misses = lookups('miss');
    server.runtime.invalidateCredentials((c) => c.agentId === 'agent-rev');
    assert.equal((await check(token)).status.code, 0);
    assert.equal(lookups('miss') - misses, 1, 'the invalidated entry was not served from the cache');
  });

  it('removing the signing key from the issuer JWKS ends cached credentials signed with it', async () => {
    const token = await fx.token({ agent: 'agent-key', role: 'RETRIEVER' });
    assert.equal((await check(token)).status.code, 0);
    assert.equal((await check(token)).status.code, 0);
    const jwksFile = fx.policy.identity.jwksFile!;
    const original = await readFile(jwksFile, 'utf8');
    const { publicKey } = await generateKeyPair('ES256');
    const other = { ...(await exportJWK(publicKey)), kid: 'replacement', alg: 'ES256', use: 'sig' };
    await writeFile(jwksFile, JSON.stringify({ keys: [other] }));
    try {
      // The JWKS file is checked for changes at most once a second; keep asking until it was.
      let reason: string | undefined;
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        reason = denyReason(await check(token));
        if (reason) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(reason, 'invalid_credential');
    } finally {
      await writeFile(jwksFile, original);
    }
  });
});
