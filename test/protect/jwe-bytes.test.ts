import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compactDecrypt } from 'jose';
import { sealCompactBytes } from '../../src/protect/jwe-compact.js';
import { looksLikeCompactJwe, openForDomain, sealForDomain, sealForDomainBytes } from '../../src/protect/jwe.js';
import { parseKeyring, type Keyring } from '../../src/protect/keyring.js';

/**
 * The byte form of the domain JWE (what RETRIEVAL puts on the wire since it stopped going through a
 * string and a TextEncoder) must be exactly the compact serialization: ASCII, five parts, opened by
 * jose and by openForDomain like the string form.
 */
const DOMAIN = 'agent_memory';

async function ringOf(alg: 'A256KW' | 'dir'): Promise<{ ring: Keyring; secret: Buffer }> {
  const secret = randomBytes(32);
  const ring = await parseKeyring('test.jwks.json', JSON.stringify({ keys: [{ kty: 'oct', kid: `k-${alg}`, alg, use: 'enc', k: secret.toString('base64url') }] }));
  return { ring, secret };
}

describe('sealForDomainBytes', () => {
  for (const alg of ['A256KW', 'dir'] as const) {
    // Empty bodies never reach a seal (processBody passes them), as with the string form.
    it(`${alg}: the bytes are the ASCII compact JWE; jose and openForDomain open it`, async () => {
      const { ring, secret } = await ringOf(alg);
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 70_000 }), fc.option(fc.constantFrom('application/json', 'text/plain; charset=utf-8'), { nil: undefined }), async (plain, cty) => {
          const bytes = sealForDomainBytes(plain, ring, { domain: DOMAIN, ...(cty ? { contentType: cty } : {}) });
          assert.ok(Buffer.isBuffer(bytes));
          for (const b of bytes) assert.ok(b < 0x80, 'compact JWE bytes are ASCII');
          const text = bytes.toString('latin1');
          assert.ok(looksLikeCompactJwe(text));
          const opened = await openForDomain(text, ring, DOMAIN);
          assert.deepEqual(Buffer.from(opened.plaintext), Buffer.from(plain));
          assert.equal(opened.contentType, cty);
          const viaJose = await compactDecrypt(text, alg === 'dir' ? secret : new Uint8Array(secret));
          assert.deepEqual(Buffer.from(viaJose.plaintext), Buffer.from(plain));
          assert.equal(viaJose.protectedHeader.mesh_domain, DOMAIN);
        }),
        { numRuns: 25 },
      );
    });
  }

  it('has the same shape as the string form (same header part; part lengths follow the plaintext)', async () => {
    const { ring } = await ringOf('A256KW');
    const plain = Buffer.from(JSON.stringify({ items: Array.from({ length: 500 }, (_, i) => ({ i, note: `n${i}` })) }));
    const fromBytes = sealForDomainBytes(plain, ring, { domain: DOMAIN, contentType: 'application/json' }).toString('latin1').split('.');
    const fromString = (await sealForDomain(plain, ring, { domain: DOMAIN, contentType: 'application/json' })).split('.');
    assert.equal(fromBytes[0], fromString[0]);
    assert.deepEqual(
      fromBytes.map((p) => p.length),
      fromString.map((p) => p.length),
    );
  });

  it('uses a fresh CEK and IV for every seal (random bytes are cut from a block, never reused)', async () => {
    const { ring } = await ringOf('A256KW');
    const seen = { key: new Set<string>(), iv: new Set<string>() };
    // More seals than one 4 KiB random block serves (44 bytes each), so blocks are replaced on the way.
    for (let i = 0; i < 300; i++) {
      const [, ek, iv] = sealForDomainBytes(Buffer.from('same body'), ring, { domain: DOMAIN }).toString('latin1').split('.');
      assert.ok(!seen.key.has(ek!), 'wrapped CEK repeated');
      assert.ok(!seen.iv.has(iv!), 'IV repeated');
      seen.key.add(ek!);
      seen.iv.add(iv!);
    }
  });

  it('refuses a key that is not a 256-bit A256KW/dir key, as the string form does', () => {
    assert.throws(() => sealCompactBytes(Buffer.from('x'), { alg: 'A256KW', secret: randomBytes(16) }, { alg: 'A256KW', enc: 'A256GCM' }));
  });
});
