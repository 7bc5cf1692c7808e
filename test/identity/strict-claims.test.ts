import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CredentialError } from '../../src/errors.js';
import { CredentialVerifier } from '../../src/identity/verifier.js';
import { claims, jwks, newKey, settings, sign, tempDir, type TestKey } from './helpers.js';

const T0 = 1_800_000_000_000;
let dir: string;
let cleanup: () => Promise<void>;
let key: TestKey;
let v: CredentialVerifier;

before(async () => {
  ({ dir, cleanup } = await tempDir());
  key = await newKey('ES256');
  const file = join(dir, 'issuer.jwks.json');
  await writeFile(file, JSON.stringify(jwks(key)));
  v = new CredentialVerifier(settings({ jwksFile: file }), { maxAgeMs: () => 600_000, now: () => T0 });
});
after(async () => {
  v.close();
  await cleanup();
});

async function refused(token: string, message: RegExp): Promise<void> {
  const err = await v.verify(token).then(() => assert.fail('accepted'), (e: unknown) => e);
  assert.ok(err instanceof CredentialError, String(err));
  assert.equal(err.code, 'invalid_credential');
  assert.match(err.message, message);
}

describe('claims and headers that used to weaken checks quietly', () => {
  it('a SPIFFE claim that is not a string is refused (it disabled workload binding)', async () => {
    for (const value of [['spiffe://cluster.local/ns/a/sa/b'], { uri: 'spiffe://x' }, 42, true, null]) {
      await refused(await sign(key, claims(T0, { spiffe_id: value })), /"spiffe_id" claim must be a string/);
    }
    assert.equal((await v.verify(await sign(key, claims(T0, { spiffe_id: 'spiffe://cluster.local/ns/a/sa/b' })))).spiffeId, 'spiffe://cluster.local/ns/a/sa/b');
    assert.equal((await v.verify(await sign(key, claims(T0)))).spiffeId, undefined, 'absent stays absent');
  });

  it('typ: absent, JWT, at+jwt and application/at+jwt are accepted; other token types are refused', async () => {
    for (const typ of [undefined, 'JWT', 'jwt', 'at+jwt', 'application/at+jwt', 'AT+JWT']) {
      const cred = await v.verify(await sign(key, claims(T0), { typ }));
      assert.equal(cred.agentId, 'agent-1', String(typ));
    }
    for (const typ of ['logout+jwt', 'secevent+jwt', 'dpop+jwt', 'JOSE', 'JWE', 'application/jwt+evil', '']) {
      await refused(await sign(key, claims(T0), { typ }), /"typ" .* is not accepted/);
    }
  });
});
