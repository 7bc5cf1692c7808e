import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { CredentialError } from '../../src/errors.js';
import { CredentialVerifier } from '../../src/identity/verifier.js';
import { RevocationRegistry } from '../../src/policy/guards/revocation.js';
import { claims, newKey, replaceFile, settings, sign, signRaw, tempDir, type TestKey } from './helpers.js';

/**
 * Revocation and cache invalidation follow the key that actually verified a credential, not the kid its
 * header claims (or leaves out): a kid-less token signed by a revoked key was allowed because the
 * library picked "the only key that fits" and nobody knew which one that was.
 */
const T0 = 1_800_000_000_000;

let dir: string;
let cleanup: () => Promise<void>;
let k1: TestKey; // ES256, kid "k1"
let k2: TestKey; // RS256, published without a kid
let k2Jwk: JWK;
let k2Thumb: string;

before(async () => {
  ({ dir, cleanup } = await tempDir());
  k1 = await newKey('ES256', 'k1');
  k2 = await newKey('RS256');
  const { kid: _drop, ...rest } = k2.jwk;
  k2Jwk = rest;
  k2Thumb = await calculateJwkThumbprint(k2Jwk);
});
after(() => cleanup());

/** A signed token whose protected header has no `kid` at all. */
async function withoutKid(key: TestKey, nowMs: number, extra: Record<string, unknown> = {}): Promise<string> {
  if (key.alg === 'ES256') return signRaw(key, { alg: 'ES256', typ: 'JWT' }, claims(nowMs, extra));
  return sign(key, claims(nowMs, extra), { kid: undefined });
}

async function setFile(name: string, keys: JWK[]): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify({ keys }));
  return file;
}

function registryWith(keyIds: string[]): RevocationRegistry {
  const reg = new RevocationRegistry({ invalidate: () => {} });
  void reg.apply({ agents: new Set(), tokenIds: new Set(), keyIds: new Set(keyIds), file: undefined });
  return reg;
}

describe('the verifying key, not the header, names a credential\'s key', () => {
  it('a kid-less token signed by a revoked kid is revoked (it was allowed)', async () => {
    const file = await setFile('mixed.jwks.json', [k1.jwk, k2Jwk]);
    const v = new CredentialVerifier(settings({ jwksFile: file }), { maxAgeMs: () => 600_000, now: () => T0 });
    try {
      const cred = await v.verify(await withoutKid(k1, T0));
      assert.equal(cred.kid, 'k1', 'the kid of the JWK that verified, although the header named none');
      assert.equal(cred.keyThumbprint, await calculateJwkThumbprint(k1.jwk));
      assert.equal(registryWith(['k1']).isRevoked(cred), true);
      // A key published without a kid is revocable by its RFC 7638 thumbprint.
      const byK2 = await v.verify(await withoutKid(k2, T0));
      assert.equal(byK2.kid, undefined);
      assert.equal(byK2.keyThumbprint, k2Thumb);
      assert.equal(registryWith([k2Thumb]).isRevoked(byK2), true);
      assert.equal(registryWith(['k1']).isRevoked(byK2), false);
    } finally {
      v.close();
    }
  });

  it('when every issuer key has a kid, a token without one is invalid_credential', async () => {
    const file = await setFile('kids.jwks.json', [k1.jwk]);
    const v = new CredentialVerifier(settings({ jwksFile: file }), { maxAgeMs: () => 600_000, now: () => T0 });
    try {
      const err = await v.verify(await withoutKid(k1, T0)).then(() => assert.fail('accepted'), (e: unknown) => e);
      assert.ok(err instanceof CredentialError);
      assert.equal(err.code, 'invalid_credential');
      assert.match(err.message, /names no "kid"/);
      // With the kid it verifies, so the refusal is about the missing kid only.
      assert.equal((await v.verify(await sign(k1, claims(T0)))).kid, 'k1');
    } finally {
      v.close();
    }
  });

  it('removing a key from the JWKS drops its cached credentials, kid or not', async () => {
    let now = T0;
    const file = await setFile('rotating.jwks.json', [k1.jwk, k2Jwk]);
    const v = new CredentialVerifier(settings({ jwksFile: file }), { maxAgeMs: () => 600_000, now: () => now, jwksFileCheckIntervalMs: 1000 });
    try {
      const kidless1 = await withoutKid(k1, T0); // header without kid, verified by k1
      const kidless2 = await withoutKid(k2, T0); // key without kid
      await v.verify(kidless1);
      await v.verify(kidless2);
      // k1 goes: the credential it verified must not be answered from the cache any more.
      await replaceFile(file, JSON.stringify({ keys: [k2Jwk] }));
      now += 2000;
      await assert.rejects(v.verify(kidless1), (e: unknown) => e instanceof CredentialError && e.code === 'invalid_credential');
      assert.equal((await v.verify(kidless2)).keyThumbprint, k2Thumb, 'credentials of the remaining key stay valid');
      // The kid-less key goes too.
      await replaceFile(file, JSON.stringify({ keys: [k1.jwk] }));
      now += 2000;
      await assert.rejects(v.verify(kidless2), (e: unknown) => e instanceof CredentialError && e.code === 'invalid_credential');
    } finally {
      v.close();
    }
  });
});
