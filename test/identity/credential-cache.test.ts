import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CredentialError } from '../../src/errors.js';
import { CredentialCache } from '../../src/identity/credential-cache.js';
import { CredentialVerifier, type VerifierOptions } from '../../src/identity/verifier.js';
import { claims, jwks, newKey, replaceFile, settings, sign, tempDir, type TestKey } from './helpers.js';

const T0 = 1_800_000_000_000;

let dir: string;
let cleanup: () => Promise<void>;
let keyA: TestKey;
let keyB: TestKey;

before(async () => {
  ({ dir, cleanup } = await tempDir());
  [keyA, keyB] = await Promise.all([newKey('ES256'), newKey('ES256')]);
});
after(() => cleanup());

let fileNo = 0;
/** A verifier over its own JWKS file, an injected clock and a lookup counter. */
async function setup(opts: Partial<VerifierOptions> = {}, keys: TestKey[] = [keyA, keyB]) {
  const jwksFile = join(dir, `issuer-${fileNo++}.jwks.json`);
  await writeFile(jwksFile, JSON.stringify(jwks(...keys)));
  const clock = { t: T0 };
  const lookups = { hit: 0, miss: 0 };
  let maxAge = 600_000;
  const v = new CredentialVerifier(settings({ jwksFile }), {
    maxAgeMs: () => maxAge,
    now: () => clock.t,
    onCacheLookup: (hit) => void (hit ? lookups.hit++ : lookups.miss++),
    ...opts,
  });
  return { v, clock, lookups, jwksFile, setMaxAge: (ms: number) => void (maxAge = ms) };
}

describe('credential cache', () => {
  it('stores a SHA-256 of the token, not the token', () => {
    const key = CredentialCache.keyOf('header.payload.signature');
    assert.equal(key.length, 43);
    assert.ok(!key.includes('payload'));
    assert.equal(key, CredentialCache.keyOf('header.payload.signature'));
    assert.notEqual(key, CredentialCache.keyOf('header.payload.signaturE'));
  });

  it('a hit returns the same credential without re-verifying', async () => {
    const { v, lookups, clock } = await setup();
    const token = await sign(keyA, claims(T0));
    const first = await v.verify(token);
    assert.deepEqual(lookups, { hit: 0, miss: 1 });
    for (let i = 0; i < 50; i++) {
      clock.t += 10;
      assert.equal(await v.verify(token), first);
    }
    assert.deepEqual(lookups, { hit: 50, miss: 1 });
    v.close();
  });

  it('concurrent first calls with one token share a verification and all succeed', async () => {
    const { v } = await setup();
    const token = await sign(keyA, claims(T0));
    const creds = await Promise.all(Array.from({ length: 20 }, () => v.verify(token)));
    assert.ok(creds.every((c) => c === creds[0]));
    v.close();
  });

  it('failures are not cached', async () => {
    const { v, lookups } = await setup();
    const bad = `${(await sign(keyA, claims(T0))).slice(0, -4)}AAAA`;
    for (let i = 0; i < 3; i++) await assert.rejects(v.verify(bad), CredentialError);
    assert.deepEqual(lookups, { hit: 0, miss: 3 });
    v.close();
  });

  it('an entry ends at exp; past exp the token is re-verified (skew) and then expires', async () => {
    const { v, lookups, clock } = await setup();
    const iat = Math.floor(T0 / 1000);
    const token = await sign(keyA, claims(T0, { exp: iat + 60 }));
    await v.verify(token);
    clock.t = T0 + 59_000;
    await v.verify(token);
    assert.deepEqual(lookups, { hit: 1, miss: 1 });
    clock.t = T0 + 60_000; // at exp: cache no longer answers; still inside the 30 s clock skew
    await v.verify(token);
    assert.deepEqual(lookups, { hit: 1, miss: 2 });
    clock.t = T0 + 70_000;
    await v.verify(token); // not cached again once past exp
    assert.deepEqual(lookups, { hit: 1, miss: 3 });
    clock.t = T0 + 91_000;
    await assert.rejects(v.verify(token), (e: unknown) => e instanceof CredentialError && e.code === 'expired_credential');
    v.close();
  });

  it('an entry ends at iat + maxAgeMs(), and a smaller max age applies at once', async () => {
    const { v, lookups, clock, setMaxAge } = await setup();
    setMaxAge(20_000);
    const token = await sign(keyA, claims(T0)); // exp is 300 s away
    await v.verify(token);
    clock.t = T0 + 19_000;
    await v.verify(token);
    assert.deepEqual(lookups, { hit: 1, miss: 1 });
    clock.t = T0 + 20_000;
    await v.verify(token);
    assert.deepEqual(lookups, { hit: 1, miss: 2 });

    const other = await sign(keyA, claims(T0 + 20_000));
    await v.verify(other);
    await v.verify(other);
    assert.deepEqual(lookups, { hit: 2, miss: 3 });
    clock.t = T0 + 21_000; // 1 s after `other` was issued: still good under the 20 s max age
    setMaxAge(1_000); // a policy reload shrank the largest max age
    await v.verify(other);
    assert.deepEqual(lookups, { hit: 2, miss: 4 });
    v.close();
  });

  it('is a bounded LRU', async () => {
    const { v, lookups } = await setup({ cacheSize: 2 });
    const [t1, t2, t3] = await Promise.all([1, 2, 3].map((i) => sign(keyA, claims(T0, { sub: `agent-${i}` }))));
    await v.verify(t1);
    await v.verify(t2);
    await v.verify(t1); // t1 is now the most recently used
    await v.verify(t3); // evicts t2
    assert.deepEqual(lookups, { hit: 1, miss: 3 });
    await v.verify(t1);
    assert.deepEqual(lookups, { hit: 2, miss: 3 });
    await v.verify(t2);
    assert.deepEqual(lookups, { hit: 2, miss: 4 });
    v.close();
  });

  it('evicts an older entry, not the one just stored, when every other entry was used', async () => {
    const { v, lookups } = await setup({ cacheSize: 2 });
    const [t1, t2, t3] = await Promise.all([1, 2, 3].map((i) => sign(keyA, claims(T0, { sub: `agent-${i}` }))));
    await v.verify(t1);
    await v.verify(t2);
    await v.verify(t1);
    await v.verify(t2); // both used since they were stored
    await v.verify(t3); // t1, the oldest, goes
    assert.deepEqual(lookups, { hit: 2, miss: 3 });
    await v.verify(t3);
    await v.verify(t2);
    assert.deepEqual(lookups, { hit: 4, miss: 3 });
    await v.verify(t1);
    assert.deepEqual(lookups, { hit: 4, miss: 4 });
    v.close();
  });

  it('cacheSize 0 disables caching', async () => {
    const { v, lookups } = await setup({ cacheSize: 0 });
    const token = await sign(keyA, claims(T0));
    await v.verify(token);
    await v.verify(token);
    assert.deepEqual(lookups, { hit: 0, miss: 2 });
    v.close();
  });

  it('invalidate drops matching entries and returns how many; clear drops all', async () => {
    const { v, lookups } = await setup();
    const alice = await sign(keyA, claims(T0, { sub: 'alice' }));
    const bob = await sign(keyA, claims(T0, { sub: 'bob' }));
    const bob2 = await sign(keyB, claims(T0, { sub: 'bob' }));
    await Promise.all([v.verify(alice), v.verify(bob), v.verify(bob2)]);
    assert.equal(v.invalidate((c) => c.agentId === 'bob'), 2);
    assert.equal(v.invalidate((c) => c.agentId === 'bob'), 0);
    await v.verify(alice);
    await v.verify(bob);
    assert.deepEqual(lookups, { hit: 1, miss: 4 });
    v.clear();
    await v.verify(alice);
    assert.deepEqual(lookups, { hit: 1, miss: 5 });
    v.close();
  });

  it('removing a key from the JWKS drops entries verified with it', async () => {
    const { v, lookups, clock, jwksFile } = await setup();
    const tokenA = await sign(keyA, claims(T0));
    const tokenB = await sign(keyB, claims(T0));
    await v.verify(tokenA);
    await v.verify(tokenB);
    assert.deepEqual(v.keyIds().sort(), [keyA.kid, keyB.kid].sort());

    await replaceFile(jwksFile, JSON.stringify(jwks(keyB)));
    clock.t += 1_500; // past the file check interval
    await v.verify(tokenB); // a hit, but the due file check runs first
    assert.deepEqual(lookups, { hit: 1, miss: 2 });
    assert.deepEqual(v.keyIds(), [keyB.kid]);
    await assert.rejects(v.verify(tokenA), (e: unknown) => e instanceof CredentialError && e.code === 'invalid_credential');
    assert.deepEqual(lookups, { hit: 1, miss: 3 });
    v.close();
  });

  it('a kid whose key material changed counts as removed', async () => {
    const { v, lookups, clock, jwksFile } = await setup({}, [keyA]);
    const tokenA = await sign(keyA, claims(T0));
    await v.verify(tokenA);
    const impostor = await newKey('ES256', keyA.kid);
    await replaceFile(jwksFile, JSON.stringify(jwks(impostor)));
    clock.t += 1_500;
    await assert.rejects(v.verify(tokenA), CredentialError);
    assert.deepEqual(lookups, { hit: 0, miss: 2 });
    v.close();
  });
});
