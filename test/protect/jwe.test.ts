import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { PayloadError } from '../../src/errors.js';
import { decodeBase64urlStrict, sealCompact } from '../../src/protect/jwe-compact.js';
import { openForDomain, sealForDomain } from '../../src/protect/jwe.js';
import { loadKeyring, parseKeyring, type Keyring } from '../../src/protect/keyring.js';

const DOMAIN = 'agent_memory';
const SECRET_TEXT = 'patient Jane Roe, ssn 123-45-6789';

interface Key {
  kid: string;
  alg: 'A256KW' | 'dir';
  secret: Buffer;
}

function newKey(alg: 'A256KW' | 'dir', kid = `${alg}-${randomBytes(4).toString('hex')}`): Key {
  return { kid, alg, secret: randomBytes(32) };
}

function jwkOf(k: Key): object {
  return { kty: 'oct', kid: k.kid, alg: k.alg, use: 'enc', k: k.secret.toString('base64url') };
}

async function ringOf(...keys: Key[]): Promise<Keyring> {
  return parseKeyring('test.jwks.json', JSON.stringify({ keys: keys.map(jwkOf) }));
}

/** Asserts a payload_rejected refusal whose message carries neither plaintext nor key material. */
async function assertRejected(p: Promise<unknown>, keys: readonly Key[], message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof PayloadError, `expected PayloadError, got ${String(e)}`);
    assert.equal(e.code, 'payload_rejected');
    if (message) assert.match(e.message, message);
    assert.ok(!e.message.includes(SECRET_TEXT) && !e.message.includes('Jane'), 'message leaks plaintext');
    for (const k of keys) {
      assert.ok(!e.message.includes(k.secret.toString('base64url')), 'message leaks key material');
      assert.ok(!e.message.includes(k.secret.toString('hex')), 'message leaks key material');
    }
    return true;
  });
}

const b64u = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
const unb64u = (s: string) => Buffer.from(s, 'base64url');

/** Replaces part `i` of a compact JWE with `f(bytes)` re-encoded. */
function withPart(compact: string, i: number, f: (b: Buffer) => Buffer): string {
  const parts = compact.split('.');
  parts[i] = b64u(f(unb64u(parts[i]!)));
  return parts.join('.');
}

function flipBit(b: Buffer, at = Math.floor(b.length / 2)): Buffer {
  const c = Buffer.from(b);
  c[at] = c[at]! ^ 0x01;
  return c;
}

const secretBody = () => Buffer.from(`{"note":"${SECRET_TEXT}","pad":"${'x'.repeat(200)}"}`);

describe('domain JWE (A256KW / dir + A256GCM on node:crypto)', () => {
  for (const alg of ['A256KW', 'dir'] as const) {
    describe(alg, () => {
      it('jose opens what sealForDomain seals, with the same protected header', async () => {
        const key = newKey(alg);
        const ring = await ringOf(key);
        const body = secretBody();
        const compact = await sealForDomain(body, ring, { domain: DOMAIN, contentType: 'application/json', extraHeader: { 'x-attestation': 'sha256:ab' } });
        const parts = compact.split('.');
        assert.equal(parts.length, 5);
        assert.equal(parts[1] === '', alg === 'dir');
        const { plaintext, protectedHeader } = await compactDecrypt(compact, key.secret, {
          keyManagementAlgorithms: [alg],
          contentEncryptionAlgorithms: ['A256GCM'],
        });
        assert.deepEqual(Buffer.from(plaintext), body);
        assert.deepEqual(protectedHeader, { alg, enc: 'A256GCM', kid: key.kid, mesh_domain: DOMAIN, cty: 'application/json', 'x-attestation': 'sha256:ab' });
      });

      it('openForDomain opens what jose CompactEncrypt seals', async () => {
        const key = newKey(alg);
        const ring = await ringOf(key);
        const body = secretBody();
        const compact = await new CompactEncrypt(body)
          .setProtectedHeader({ alg, enc: 'A256GCM', kid: key.kid, mesh_domain: DOMAIN, cty: 'text/plain' })
          .encrypt(key.secret);
        const opened = await openForDomain(compact, ring, DOMAIN);
        assert.deepEqual(Buffer.from(opened.plaintext), body);
        assert.equal(opened.contentType, 'text/plain');
        assert.equal(opened.header.kid, key.kid);
        assert.equal(opened.header.mesh_domain, DOMAIN);
      });

      for (const size of [0, 1, 4096, 1024 * 1024]) {
        it(`round trip of a ${size}-byte body (and jose agrees)`, async () => {
          const key = newKey(alg);
          const ring = await ringOf(key);
          const body = randomBytes(size);
          const compact = await sealForDomain(body, ring, { domain: DOMAIN });
          const opened = await openForDomain(compact, ring, DOMAIN);
          assert.deepEqual(Buffer.from(opened.plaintext), body);
          assert.equal(opened.contentType, undefined);
          assert.deepEqual(Buffer.from((await compactDecrypt(compact, key.secret)).plaintext), body);
        });
      }

      it('two seals of the same body differ (fresh IV, and for A256KW a fresh CEK)', async () => {
        const ring = await ringOf(newKey(alg));
        const body = secretBody();
        const [a, b] = [await sealForDomain(body, ring, { domain: DOMAIN }), await sealForDomain(body, ring, { domain: DOMAIN })];
        assert.notEqual(a.split('.')[2], b.split('.')[2]);
        if (alg === 'A256KW') assert.notEqual(a.split('.')[1], b.split('.')[1]);
      });

      const names = ['protected header', 'encrypted key', 'initialization vector', 'ciphertext', 'authentication tag'];
      for (let i = 0; i < 5; i++) {
        if (alg === 'dir' && i === 1) continue; // covered below: dir has no encrypted key to flip
        it(`refuses a JWE whose ${names[i]} was tampered with`, async () => {
          const key = newKey(alg);
          const ring = await ringOf(key);
          const compact = await sealForDomain(secretBody(), ring, { domain: DOMAIN });
          // Header: a changed member keeps the header valid JSON for this domain, so only the tag can catch it.
          const tampered =
            i === 0
              ? withPart(compact, 0, (h) => Buffer.from(JSON.stringify({ ...JSON.parse(h.toString()), cty: 'text/html' })))
              : withPart(compact, i, (b) => flipBit(b));
          assert.notEqual(tampered, compact);
          await assertRejected(openForDomain(tampered, ring, DOMAIN), [key]);
          await assert.rejects(compactDecrypt(tampered, key.secret)); // jose agrees
        });
      }

      it('refuses the right kid with other key material', async () => {
        const key = newKey(alg);
        const impostor = { ...newKey(alg), kid: key.kid };
        const compact = await sealForDomain(secretBody(), await ringOf(impostor), { domain: DOMAIN });
        await assertRejected(openForDomain(compact, await ringOf(key), DOMAIN), [key, impostor], /failed to decrypt/);
      });
    });
  }

  it('dir: refuses a non-empty encrypted key; A256KW: refuses an empty or wrong-length one', async () => {
    const dir = newKey('dir');
    const kw = newKey('A256KW');
    const dirJwe = await sealForDomain(secretBody(), await ringOf(dir), { domain: DOMAIN });
    await assertRejected(openForDomain(withPart(dirJwe, 1, () => randomBytes(40)), await ringOf(dir), DOMAIN), [dir], /empty encrypted key/);
    const kwJwe = await sealForDomain(secretBody(), await ringOf(kw), { domain: DOMAIN });
    await assertRejected(openForDomain(withPart(kwJwe, 1, () => Buffer.alloc(0)), await ringOf(kw), DOMAIN), [kw], /encrypted key is 0 bytes/);
    await assertRejected(openForDomain(withPart(kwJwe, 1, (b) => b.subarray(0, 32)), await ringOf(kw), DOMAIN), [kw], /encrypted key is 32 bytes/);
  });

  it('refuses an IV that is not 12 bytes and a tag that is not 16 bytes', async () => {
    const key = newKey('A256KW');
    const ring = await ringOf(key);
    const compact = await sealForDomain(secretBody(), ring, { domain: DOMAIN });
    await assertRejected(openForDomain(withPart(compact, 2, (b) => Buffer.concat([b, Buffer.alloc(4)])), ring, DOMAIN), [key], /initialization vector is 16 bytes/);
    await assertRejected(openForDomain(withPart(compact, 4, (b) => b.subarray(0, 12)), ring, DOMAIN), [key], /authentication tag is 12 bytes/);
  });

  it("refuses another domain's JWE before decrypting, even under a key this ring holds", async () => {
    const key = newKey('A256KW');
    const ring = await ringOf(key);
    const compact = await sealForDomain(secretBody(), ring, { domain: 'other_domain' });
    await assertRejected(openForDomain(compact, ring, DOMAIN), [key], /belongs to domain "other_domain", not agent_memory/);
    const noDomain = await new CompactEncrypt(secretBody()).setProtectedHeader({ alg: 'A256KW', enc: 'A256GCM', kid: key.kid }).encrypt(key.secret);
    await assertRejected(openForDomain(noDomain, ring, DOMAIN), [key], /belongs to domain undefined/);
  });

  it('refuses an unknown kid and a missing kid', async () => {
    const key = newKey('A256KW');
    const compact = await sealForDomain(secretBody(), await ringOf(key), { domain: DOMAIN });
    await assertRejected(openForDomain(compact, await ringOf(newKey('A256KW')), DOMAIN), [key], /key id .* is not in the agent_memory keyring/);
    const noKid = await new CompactEncrypt(secretBody()).setProtectedHeader({ alg: 'A256KW', enc: 'A256GCM', mesh_domain: DOMAIN }).encrypt(key.secret);
    await assertRejected(openForDomain(noKid, await ringOf(key), DOMAIN), [key], /key id undefined/);
  });

  it('opens JWEs made under an older key of the ring after rotation', async () => {
    const old = newKey('A256KW');
    const compact = await sealForDomain(secretBody(), await ringOf(old), { domain: DOMAIN });
    const rotated = await ringOf(old, newKey('A256KW'));
    assert.deepEqual(Buffer.from((await openForDomain(compact, rotated, DOMAIN)).plaintext), secretBody());
    assert.notEqual((await sealForDomain(secretBody(), rotated, { domain: DOMAIN })).split('.')[0], compact.split('.')[0]);
  });

  it('refuses a wrong enc, an unsupported alg, and an alg other than the key’s', async () => {
    const key = newKey('A256KW');
    const ring = await ringOf(key);
    const a128 = await new CompactEncrypt(secretBody()).setProtectedHeader({ alg: 'A256KW', enc: 'A128GCM', kid: key.kid, mesh_domain: DOMAIN }).encrypt(key.secret);
    await assertRejected(openForDomain(a128, ring, DOMAIN), [key], /enc "A128GCM" is not A256GCM/);
    const cbc = await new CompactEncrypt(secretBody()).setProtectedHeader({ alg: 'A256KW', enc: 'A256CBC-HS512', kid: key.kid, mesh_domain: DOMAIN }).encrypt(key.secret);
    await assertRejected(openForDomain(cbc, ring, DOMAIN), [key], /is not A256GCM/);
    const a128kw = await new CompactEncrypt(secretBody()).setProtectedHeader({ alg: 'A128KW', enc: 'A256GCM', kid: key.kid, mesh_domain: DOMAIN }).encrypt(key.secret.subarray(0, 16));
    await assertRejected(openForDomain(a128kw, ring, DOMAIN), [key], /alg "A128KW" is not A256KW or dir/);
    // The same kid used as `dir`: an attacker must not be able to pick how the ring's key is used.
    const asDir = sealCompact(secretBody(), { alg: 'dir', secret: key.secret }, { alg: 'dir', enc: 'A256GCM', kid: key.kid, mesh_domain: DOMAIN });
    await assertRejected(openForDomain(asDir, ring, DOMAIN), [key], /alg dir does not match key/);
    const noAlg = sealCompact(secretBody(), { alg: 'A256KW', secret: key.secret }, { enc: 'A256GCM', kid: key.kid, mesh_domain: DOMAIN });
    await assertRejected(openForDomain(noAlg, ring, DOMAIN), [key], /alg undefined/);
  });

  it('refuses `crit` (any value) and `zip`, even when the JWE is otherwise valid', async () => {
    const key = newKey('A256KW');
    const ring = await ringOf(key);
    const base = { alg: 'A256KW', enc: 'A256GCM', kid: key.kid, mesh_domain: DOMAIN };
    for (const extra of [{ crit: ['exp'], exp: 1 }, { crit: [] }, { crit: null }]) {
      const compact = sealCompact(secretBody(), { alg: 'A256KW', secret: key.secret }, { ...base, ...extra });
      await assertRejected(openForDomain(compact, ring, DOMAIN), [key], /crit/);
    }
    const zipped = sealCompact(secretBody(), { alg: 'A256KW', secret: key.secret }, { ...base, zip: 'DEF' });
    await assertRejected(openForDomain(zipped, ring, DOMAIN), [key], /zip/);
  });

  it('refuses anything but exactly five parts', async () => {
    const key = newKey('A256KW');
    const ring = await ringOf(key);
    const parts = (await sealForDomain(secretBody(), ring, { domain: DOMAIN })).split('.');
    for (const bad of [parts.slice(0, 4), [...parts, parts[4]!], [...parts, ''], parts.slice(0, 1), ['', ...parts.slice(1)]]) {
      await assertRejected(openForDomain(bad.join('.'), ring, DOMAIN), [key], /not a JWE/);
    }
    await assertRejected(openForDomain('', ring, DOMAIN), [key], /not a JWE/);
  });

  it('refuses characters outside unpadded base64url in any part', async () => {
    const key = newKey('A256KW');
    const ring = await ringOf(key);
    const compact = await sealForDomain(secretBody(), ring, { domain: DOMAIN });
    const parts = compact.split('.');
    for (let i = 0; i < 5; i++) {
      for (const bad of ['+', '/', '=', ' ', '\n', '*', 'é', '\u0000', '%']) {
        const p = [...parts];
        const s = p[i]!;
        const at = Math.floor(s.length / 2);
        p[i] = s.slice(0, at) + bad + s.slice(at + 1); // replaced: same length
        await assertRejected(openForDomain(p.join('.'), ring, DOMAIN), [key], /not base64url/);
        p[i] = s + bad; // appended
        await assertRejected(openForDomain(p.join('.'), ring, DOMAIN), [key], /not a JWE/);
      }
      const padded = [...parts];
      padded[i] = `${padded[i]}==`;
      await assertRejected(openForDomain(padded.join('.'), ring, DOMAIN), [key], /not a JWE/);
    }
  });

  it('refuses a protected header that is not a UTF-8 JSON object', async () => {
    const key = newKey('A256KW');
    const ring = await ringOf(key);
    const compact = await sealForDomain(secretBody(), ring, { domain: DOMAIN });
    for (const header of ['[1]', 'null', '"x"', '42', 'not json', '{"alg":', Buffer.from([0x7b, 0xff, 0x7d])]) {
      await assertRejected(openForDomain(withPart(compact, 0, () => Buffer.from(header)), ring, DOMAIN), [key], /not a JWE/);
    }
  });

  it('strict base64url: exactly the canonical unpadded encodings decode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        assert.deepEqual(decodeBase64urlStrict(Buffer.from(bytes).toString('base64url')), Buffer.from(bytes));
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 24, unit: fc.constantFrom(...'AQgw_-+/= .\n!é\u0000'.split('')) }), (s) => {
        const canonical = /^[A-Za-z0-9_-]*$/.test(s) && Buffer.from(s, 'base64url').toString('base64url') === s;
        assert.equal(decodeBase64urlStrict(s) !== undefined, canonical, JSON.stringify(s));
      }),
    );
    assert.equal(decodeBase64urlStrict('QR'), undefined); // unused bits set: 'QQ' is the canonical form of 0x41
    assert.deepEqual(decodeBase64urlStrict('QQ'), Buffer.from('A'));
  });
});

describe('domain keyring: key material', () => {
  const k32 = randomBytes(32).toString('base64url');

  it('refuses oct keys that are not 32 bytes of base64url, at load', async () => {
    for (const [k, what] of [
      [randomBytes(31).toString('base64url'), '31 bytes'],
      [randomBytes(33).toString('base64url'), '33 bytes'],
      [randomBytes(16).toString('base64url'), '16 bytes'],
      [`${k32.slice(0, -1)}+`, 'a "+" in it'],
      [`${randomBytes(32).toString('base64')}`, 'padded base64'],
      [undefined, 'no k'],
    ] as const) {
      await assert.rejects(
        parseKeyring('ring.jwks.json', JSON.stringify({ keys: [{ kty: 'oct', kid: 'k1', alg: 'A256KW', ...(k === undefined ? {} : { k }) }] })),
        (e: unknown) => e instanceof PayloadError && e.code === 'payload_rejected' && /not a 256-bit key/.test(e.message) && (k === undefined || !e.message.includes(k)),
        what,
      );
    }
  });

  it('refuses oct keys whose alg the domain codec does not implement', async () => {
    for (const alg of ['A128KW', 'A256GCMKW', 'HS256']) {
      await assert.rejects(parseKeyring('ring.jwks.json', JSON.stringify({ keys: [{ kty: 'oct', kid: 'k1', alg, k: k32 }] })), /oct keys must be A256KW or dir/);
    }
  });

  it('loadKeyring refuses a file holding a 31-byte key among good ones; a key without alg is A256KW', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mesh-pep-jwe-'));
    try {
      const bad = join(dir, 'bad.jwks.json');
      await writeFile(bad, JSON.stringify({ keys: [{ kty: 'oct', kid: 'a', k: k32 }, { kty: 'oct', kid: 'b', k: randomBytes(31).toString('base64url') }] }));
      await assert.rejects(loadKeyring(bad), (e: unknown) => e instanceof PayloadError && e.code === 'payload_rejected');
      const good = join(dir, 'good.jwks.json');
      await writeFile(good, JSON.stringify({ keys: [{ kty: 'oct', kid: 'a', k: k32 }] }));
      const ring = await loadKeyring(good);
      assert.equal(ring.current.alg, 'A256KW');
      assert.equal(ring.current.secret?.length, 32);
      const compact = await sealForDomain(secretBody(), ring, { domain: DOMAIN });
      assert.deepEqual(Buffer.from((await compactDecrypt(compact, Buffer.from(k32, 'base64url'))).plaintext), secretBody());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
