import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportSPKI, SignJWT } from 'jose';
import type { IdentitySettings } from '../../src/config/types.js';
import { CredentialError } from '../../src/errors.js';
import { CredentialVerifier, MAX_TOKEN_LENGTH, SAFE_HEADER_VALUE } from '../../src/identity/verifier.js';
import { b64url, claims, jwks, newKey, serveJson, settings, sign, signRaw, startServer, tempDir, type TestKey } from './helpers.js';

const T0 = 1_800_000_000_000;

let dir: string;
let cleanup: () => Promise<void>;
let jwksFile: string;
let es: TestKey;
let rs: TestKey;
let ps: TestKey;
let ed: TestKey;
let outsider: TestKey;

before(async () => {
  ({ dir, cleanup } = await tempDir());
  [es, rs, ps, ed, outsider] = await Promise.all([
    newKey('ES256'), newKey('RS256'), newKey('PS256'), newKey('EdDSA'), newKey('ES256'),
  ]);
  jwksFile = join(dir, 'issuer.jwks.json');
  await writeFile(jwksFile, JSON.stringify(jwks(es, rs, ps, ed)));
});
after(() => cleanup());

function verifier(over: Partial<IdentitySettings> = {}, now = () => T0): CredentialVerifier {
  return new CredentialVerifier(settings({ jwksFile, ...over }), { maxAgeMs: () => 600_000, now });
}

/** Verifies and expects a CredentialError with `code`; checks the message never carries the token. */
async function rejects(v: CredentialVerifier, token: string, code: string, messagePart?: RegExp): Promise<CredentialError> {
  const err = await v.verify(token).then(
    () => assert.fail('expected the credential to be rejected'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CredentialError, `expected CredentialError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (messagePart) assert.match(err.message, messagePart);
  for (const part of token.split('.')) {
    if (part.length >= 8) assert.ok(!err.message.includes(part), `message leaks token: ${err.message}`);
  }
  return err;
}

describe('CredentialVerifier: valid credentials', () => {
  it('verifies each asymmetric algorithm and maps the claims', async () => {
    const v = verifier();
    for (const key of [es, rs, ps, ed]) {
      const token = await sign(key, claims(T0, { attestation_hash: 'sha256:ab', spiffe_id: 'spiffe://td/ns/a/sa/b' }));
      const cred = await v.verify(token);
      assert.equal(cred.agentId, 'agent-1');
      assert.equal(cred.role, 'RETRIEVER');
      assert.equal(cred.attestation, 'sha256:ab');
      assert.equal(cred.spiffeId, 'spiffe://td/ns/a/sa/b');
      assert.equal(cred.issuedAtMs, Math.floor(T0 / 1000) * 1000);
      assert.equal(cred.expiresAtMs, cred.issuedAtMs + 300_000);
      assert.equal(cred.kid, key.kid);
      assert.match(cred.jti ?? '', /^jti-/);
    }
    v.close();
  });

  it('reads custom claim names and ignores non-string claim values (except the SPIFFE claim: refused)', async () => {
    const v = verifier({ roleClaim: 'x_role', attestationClaim: 'x_att', spiffeClaim: 'x_spiffe' });
    const good = await v.verify(await sign(es, claims(T0, { x_role: 'ORCHESTRATOR', x_att: 'sha256:01', x_spiffe: 'spiffe://a/b', role: 'IGNORED' })));
    assert.deepEqual([good.role, good.attestation, good.spiffeId], ['ORCHESTRATOR', 'sha256:01', 'spiffe://a/b']);
    const odd = await v.verify(await sign(es, claims(T0, { x_role: ['ADMIN'], x_att: 42, jti: 7 })));
    assert.deepEqual([odd.role, odd.attestation, odd.spiffeId, odd.jti], [undefined, undefined, undefined, undefined]);
    // Ignoring a SPIFFE claim of the wrong type would switch workload binding off.
    await rejects(v, await sign(es, claims(T0, { x_spiffe: { a: 1 } })), 'invalid_credential', /"x_spiffe" claim must be a string/);
    const empty = await v.verify(await sign(es, claims(T0, { x_role: '' })));
    assert.equal(empty.role, undefined);
    v.close();
  });

  it('accepts any configured audience in an aud array, and skips iss/aud checks when not configured', async () => {
    const v = verifier({ audiences: ['other', AUD2] });
    await v.verify(await sign(es, claims(T0, { aud: ['x', AUD2] })));
    v.close();
    const open = verifier({ issuer: undefined, audiences: [] });
    await open.verify(await sign(es, claims(T0, { iss: undefined, aud: undefined })));
    open.close();
  });
});
const AUD2 = 'mesh-2';

describe('CredentialVerifier: error mapping', () => {
  it('expired -> expired_credential', async () => {
    const v = verifier();
    const iat = Math.floor(T0 / 1000) - 1000;
    await rejects(v, await sign(es, claims(T0, { iat, nbf: iat, exp: iat + 100 })), 'expired_credential');
    v.close();
  });

  it('everything else -> invalid_credential', async () => {
    const v = verifier();
    const now = Math.floor(T0 / 1000);
    const cases: Array<[string, Promise<string> | string, RegExp]> = [
      ['bad signature', sign(es, claims(T0)).then((t) => `${t.slice(0, -4)}AAAA`), /signature/],
      ['signed by an unknown key', sign(outsider, claims(T0)), /no issuer key/],
      ['nbf in the future', sign(es, claims(T0, { nbf: now + 3600 })), /nbf/],
      ['wrong iss', sign(es, claims(T0, { iss: 'https://evil.test' })), /iss/],
      ['missing iss', sign(es, claims(T0, { iss: undefined })), /iss/],
      ['wrong aud', sign(es, claims(T0, { aud: 'someone-else' })), /aud/],
      ['missing sub', sign(es, claims(T0, { sub: undefined })), /sub/],
      ['empty sub', sign(es, claims(T0, { sub: '' })), /sub/],
      ['numeric sub', sign(es, claims(T0, { sub: 12 })), /sub/],
      ['missing iat', sign(es, claims(T0, { iat: undefined })), /iat/],
      ['missing exp', sign(es, claims(T0, { exp: undefined })), /exp/],
      ['string exp', sign(es, claims(T0, { exp: 'tomorrow' })), /exp/],
      ['iat in the future', sign(es, claims(T0, { iat: now + 3600, nbf: now })), /iat/],
      ['garbage', 'not-a-jwt', /malformed/],
      ['two segments', 'abc.def', /malformed/],
      ['empty', '', /empty/],
      ['header not JSON', `${b64url('{{{')}.${b64url(claims(T0))}.c2ln`, /malformed/],
      ['payload not JSON', sign(es, claims(T0)).then((t) => { const [h, , s] = t.split('.'); return `${h}.${b64url('[[[')}.${s}`; }), /./],
      ['oversized', `${'a'.repeat(MAX_TOKEN_LENGTH)}.b.c`, /longer/],
      ['JWE instead of JWS', 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aaaa.bbbb.cccc', /malformed/],
    ];
    for (const [name, token, msg] of cases) {
      const err = await rejects(v, await token, 'invalid_credential', msg).catch((e: Error) => {
        throw new Error(`${name}: ${e.message}`);
      });
      assert.ok(err.message.length > 0, name);
    }
    v.close();
  });

  it('a verifier with no key source fails closed', async () => {
    const v = new CredentialVerifier(settings(), { maxAgeMs: () => 600_000, now: () => T0 });
    await rejects(v, await sign(es, claims(T0)), 'invalid_credential', /no issuer key set/);
    assert.deepEqual(v.keyIds(), []);
  });

  it('a missing JWKS file fails closed and says why', async () => {
    const errors: Error[] = [];
    const v = new CredentialVerifier(settings({ jwksFile: join(dir, 'absent.json') }), {
      maxAgeMs: () => 600_000, now: () => T0, onJwksError: (e) => errors.push(e),
    });
    await rejects(v, await sign(es, claims(T0)), 'invalid_credential', /absent\.json/);
    assert.ok(errors.length >= 1 && /absent\.json/.test(errors[0].message));
  });
});

describe('CredentialVerifier: algorithm and key-selection attacks', () => {
  it('rejects alg none even with a matching kid', async () => {
    const v = verifier();
    const body = b64url(claims(T0));
    for (const alg of ['none', 'None', 'NONE']) {
      await rejects(v, `${b64url({ alg, kid: es.kid, typ: 'JWT' })}.${body}.`, 'invalid_credential');
      await rejects(v, `${b64url({ alg, kid: es.kid })}.${body}.${b64url('sig')}`, 'invalid_credential');
    }
    v.close();
  });

  it('rejects HS256 signed with the public key bytes (key confusion)', async () => {
    const v = verifier();
    const pem = await exportSPKI(rs.publicKey);
    const secrets = [Buffer.from(pem), Buffer.from(JSON.stringify(rs.jwk)), Buffer.from(JSON.stringify(jwks(es, rs, ps, ed)))];
    for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
      for (const secret of secrets) {
        const token = await new SignJWT(claims(T0)).setProtectedHeader({ alg, kid: rs.kid }).sign(secret);
        await rejects(v, token, 'invalid_credential', /algorithm/);
      }
    }
    // Hand-rolled too, in case a library someday refuses to produce it.
    const input = `${b64url({ alg: 'HS256', kid: es.kid })}.${b64url(claims(T0))}`;
    const mac = createHmac('sha256', JSON.stringify(es.jwk)).update(input).digest('base64url');
    await rejects(v, `${input}.${mac}`, 'invalid_credential');
    v.close();
  });

  it('honours settings.algorithms as an allow-list within the asymmetric set', async () => {
    const v = verifier({ algorithms: ['RS256', 'HS256'] });
    await v.verify(await sign(rs, claims(T0)));
    await rejects(v, await sign(es, claims(T0)), 'invalid_credential', /algorithm "ES256"/);
    v.close();
    const none = verifier({ algorithms: ['HS256'] });
    await rejects(none, await sign(rs, claims(T0)), 'invalid_credential', /no asymmetric algorithm/);
    none.close();
  });

  it('rejects a token whose alg does not fit the key named by kid', async () => {
    const v = verifier();
    // kid of the RSA key but signed ES256 with the outsider: no RSA key can verify an ES256 header.
    await rejects(v, await sign(outsider, claims(T0), { kid: rs.kid }), 'invalid_credential', /no issuer key/);
    v.close();
  });

  it('kid injection strings never find a key and are not echoed raw', async () => {
    const v = verifier();
    const kids: unknown[] = [
      '../../../../etc/passwd', "' OR '1'='1", '\u0000', `${es.kid}\n`, `${es.kid} `, 'x'.repeat(5000),
      '${jndi:ldap://127.0.0.1/a}', '<script>alert(1)</script>', 42, { $ne: null }, ['a'], null, true,
    ];
    for (const kid of kids) {
      // Signed by the real issuer key: only the kid is wrong, so nothing else can explain a rejection.
      const token = await sign(es, claims(T0), { kid });
      const err = await rejects(v, token, 'invalid_credential');
      if (typeof kid === 'string' && !SAFE_HEADER_VALUE.test(kid)) {
        assert.ok(!err.message.includes(kid), err.message);
        assert.match(err.message, /kid \(unprintable\)/);
      }
      assert.ok(!/[\n\u0000]/.test(err.message), 'control characters echoed');
    }
    v.close();
  });

  it('never fetches or trusts keys named by jku, x5u or an embedded jwk', async () => {
    const attacker = await newKey('ES256');
    const server = await startServer(serveJson(jwks(attacker)));
    try {
      const v = verifier();
      const headers: Array<Record<string, unknown>> = [
        { jku: `${server.url}/jwks.json` },
        { x5u: `${server.url}/cert.pem` },
        { jwk: attacker.jwk },
        { jku: `${server.url}/jwks.json`, x5u: `${server.url}/x`, jwk: attacker.jwk, kid: es.kid },
      ];
      for (const h of headers) {
        await rejects(v, await sign(attacker, claims(T0), h), 'invalid_credential');
      }
      assert.equal(server.requests, 0, 'the verifier contacted a header-named URL');
      v.close();
    } finally {
      await server.close();
    }
  });

  it('rejects unknown critical header parameters', async () => {
    const v = verifier();
    const token = await signRaw(es, { alg: 'ES256', kid: es.kid, crit: ['x-unknown'], 'x-unknown': 1 }, claims(T0));
    await rejects(v, token, 'invalid_credential', /not recognized/);
    // The same bytes without crit verify, so the rejection above is about crit alone.
    await v.verify(await signRaw(es, { alg: 'ES256', kid: es.kid }, claims(T0)));
    v.close();
  });
});

describe('CredentialVerifier: clock skew', () => {
  it('tolerates exp and nbf within clock_skew_ms, not beyond', async () => {
    const now = Math.floor(T0 / 1000);
    const v = verifier({ clockSkewMs: 30_000 });
    const iat = now - 100;
    await v.verify(await sign(es, claims(T0, { iat, nbf: iat, exp: now - 20 })));
    await rejects(v, await sign(es, claims(T0, { iat, nbf: iat, exp: now - 40 })), 'expired_credential');
    await v.verify(await sign(es, claims(T0, { nbf: now + 20 })));
    await rejects(v, await sign(es, claims(T0, { nbf: now + 40 })), 'invalid_credential', /nbf/);
    await v.verify(await sign(es, claims(T0, { iat: now + 20, nbf: now })));
    v.close();

    const strict = verifier({ clockSkewMs: 0 });
    await rejects(strict, await sign(es, claims(T0, { iat, nbf: iat, exp: now - 1 })), 'expired_credential');
    await rejects(strict, await sign(es, claims(T0, { nbf: now + 2 })), 'invalid_credential');
    strict.close();
  });
});
