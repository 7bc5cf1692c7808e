import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CredentialError } from '../../src/errors.js';
import { FileJwksSource } from '../../src/identity/jwks-file.js';
import { CredentialVerifier } from '../../src/identity/verifier.js';
import { claims, jwks, newKey, replaceFile, settings, sign, tempDir, type TestKey } from './helpers.js';

const T0 = 1_800_000_000_000;
let dir: string;
let cleanup: () => Promise<void>;
let keyA: TestKey;
let keyB: TestKey;

before(async () => {
  ({ dir, cleanup } = await tempDir());
  [keyA, keyB] = await Promise.all([newKey('ES256'), newKey('RS256')]);
});
after(() => cleanup());

describe('JWKS file source', () => {
  it('picks up a changed file after the check interval, not before', async () => {
    const path = join(dir, 'rotate.jwks.json');
    await writeFile(path, JSON.stringify(jwks(keyA)));
    const clock = { t: T0 };
    const v = new CredentialVerifier(settings({ jwksFile: path }), { maxAgeMs: () => 600_000, now: () => clock.t });
    await v.verify(await sign(keyA, claims(T0)));
    await replaceFile(path, JSON.stringify(jwks(keyA, keyB)));
    const tokenB = await sign(keyB, claims(T0));
    clock.t += 500; // inside the interval: the old set answers
    await assert.rejects(v.verify(tokenB), CredentialError);
    clock.t += 600;
    const cred = await v.verify(tokenB);
    assert.equal(cred.kid, keyB.kid);
    assert.deepEqual(v.keyIds().sort(), [keyA.kid, keyB.kid].sort());
    v.close();
  });

  it('keeps the last good set when the new file is broken, and says why once', async () => {
    const path = join(dir, 'broken.jwks.json');
    await writeFile(path, JSON.stringify(jwks(keyA)));
    const clock = { t: T0 };
    const errors: Error[] = [];
    const v = new CredentialVerifier(settings({ jwksFile: path }), {
      maxAgeMs: () => 600_000, now: () => clock.t, onJwksError: (e) => errors.push(e),
    });
    await v.verify(await sign(keyA, claims(T0)));
    const broken: Array<[string, RegExp]> = [
      ['{"keys": [', /not valid JSON/],
      ['{"kees": []}', /not a JWK Set/],
      ['{"keys": [{"kid": "x"}]}', /no "kty"/],
      [JSON.stringify({ keys: [{ ...keyA.jwk, d: 'c2VjcmV0' }] }), /private or symmetric/],
      [JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] }), /private or symmetric/],
    ];
    for (const [content, why] of broken) {
      await replaceFile(path, content);
      clock.t += 1_100;
      // A fresh token (not cached) still verifies with the last good key.
      const cred = await v.verify(await sign(keyA, claims(clock.t)));
      assert.equal(cred.kid, keyA.kid);
      assert.match(errors.at(-1)?.message ?? '', why);
      assert.ok(!(errors.at(-1)?.message ?? '').includes('c2VjcmV0'), 'key material in error');
    }
    const count = errors.length;
    clock.t += 1_100;
    await v.verify(await sign(keyA, claims(clock.t)));
    assert.equal(errors.length, count, 'the same problem was reported twice');
    // Fixed: the new set applies.
    await replaceFile(path, JSON.stringify(jwks(keyB)));
    clock.t += 1_100;
    await v.verify(await sign(keyB, claims(clock.t)));
    assert.deepEqual(v.keyIds(), [keyB.kid]);
    v.close();
  });

  it('a file that appears later is loaded', async () => {
    const path = join(dir, 'late.jwks.json');
    const clock = { t: T0 };
    const src = new FileJwksSource(path, { now: () => clock.t });
    await src.refresh();
    assert.match(src.lastError?.message ?? '', /late\.jwks\.json/);
    assert.deepEqual(src.keyIds(), []);
    await writeFile(path, JSON.stringify(jwks(keyA)));
    clock.t += 1_000;
    await src.checkForChanges();
    assert.deepEqual(src.keyIds(), [keyA.kid]);
    assert.equal(src.lastError, undefined);
    src.close();
  });
});
