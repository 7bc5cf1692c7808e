import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compactDecrypt, decodeProtectedHeader, importJWK } from 'jose';
import { PayloadError } from '../../src/errors.js';
import { tierModule } from '../../src/protect/computation/index.js';
import { sealForDomain } from '../../src/protect/jwe.js';
import { loadKeyring } from '../../src/protect/keyring.js';
import { ctx, dec, domainOf, enc, keyPair, teePolicy, tempDir, TRUSTED, UNTRUSTED, writeJson } from './fixtures.js';

const { handler } = tierModule;
const SECRET = '{"patient":"Jane Roe","ssn":"123-45-6789","note":"chest pain"}';

function rejects(reason: string) {
  return (e: unknown): boolean => e instanceof PayloadError && e.code === reason;
}

async function decryptWith(privateJwk: object, compact: string): Promise<{ plaintext: string; header: Record<string, unknown> }> {
  const key = await importJWK(privateJwk, 'ECDH-ES+A256KW');
  const { plaintext, protectedHeader } = await compactDecrypt(compact, key);
  return { plaintext: dec(plaintext), header: protectedHeader as Record<string, unknown> };
}

describe('COMPUTATION tee: sealing to an attested enclave', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await tempDir()));
  after(async () => cleanup());

  for (const crv of ['P-256', 'X25519'] as const) {
    it(`seals the body to a trusted ${crv} recipient that only its private key opens`, async () => {
      const pair = await keyPair(crv);
      const file = join(dir, `recipients-${crv}.jwks.json`);
      await writeJson(file, { keys: [{ ...pair.publicJwk, 'x-attestation': TRUSTED }] });
      const policy = teePolicy(dir, [TRUSTED], file);
      const domain = domainOf(policy, 'pii_inference');
      const out = await handler.protect(enc(SECRET), ctx(policy, domain, 'application/json'));
      assert.equal(out.contentType, 'application/jose');
      assert.equal(out.headers['x-mesh-protected'], 'COMPUTATION');
      const compact = dec(out.body);
      assert.ok(!compact.includes('Jane Roe') && !compact.includes('123-45-6789'), 'no plaintext in the sealed body');
      const h = decodeProtectedHeader(compact) as Record<string, unknown>;
      assert.equal(h.alg, 'ECDH-ES+A256KW');
      assert.equal(h.enc, 'A256GCM');
      assert.equal(h.kid, pair.publicJwk.kid);
      assert.equal(h.mesh_domain, 'pii_inference');
      assert.equal(h['x-attestation'], TRUSTED);
      assert.equal(h.cty, 'application/json');
      assert.equal((h.epk as { crv: string }).crv, crv);
      const opened = await decryptWith(pair.privateJwk, compact);
      assert.equal(opened.plaintext, SECRET);
      // A different key of the same curve cannot open it.
      const other = await keyPair(crv);
      await assert.rejects(decryptWith(other.privateJwk, compact));
    });
  }

  it('seals to the last trusted key listed, skipping untrusted and unmeasured ones', async () => {
    const [a, b, c, d, e] = await Promise.all([keyPair(), keyPair('X25519'), keyPair(), keyPair(), keyPair()]);
    const file = join(dir, 'rotation.jwks.json');
    await writeJson(file, {
      keys: [
        { ...a.publicJwk, 'x-attestation': TRUSTED },
        { ...b.publicJwk, 'x-attestation': TRUSTED },
        { ...c.publicJwk, 'x-attestation': UNTRUSTED },
        { ...d.publicJwk },
        { ...e.publicJwk, 'x-attestation': `${TRUSTED}00` },
      ],
    });
    const policy = teePolicy(dir, [TRUSTED], file);
    const out = await handler.protect(enc(SECRET), ctx(policy, domainOf(policy, 'pii_inference'), 'text/plain'));
    const compact = dec(out.body);
    assert.equal(decodeProtectedHeader(compact).kid, b.publicJwk.kid);
    assert.equal((await decryptWith(b.privateJwk, compact)).plaintext, SECRET);
    await assert.rejects(decryptWith(c.privateJwk, compact));
  });

  it('uses the RFC 7638 thumbprint as kid when a recipient key has none', async () => {
    const pair = await keyPair();
    const { kid: _kid, ...noKid } = pair.publicJwk;
    const file = join(dir, 'nokid.jwks.json');
    await writeJson(file, { keys: [{ ...noKid, 'x-attestation': TRUSTED }] });
    const policy = teePolicy(dir, [TRUSTED], file);
    const out = await handler.protect(enc(SECRET), ctx(policy, domainOf(policy, 'pii_inference'), undefined));
    const { calculateJwkThumbprint } = await import('jose');
    assert.equal(decodeProtectedHeader(dec(out.body)).kid, await calculateJwkThumbprint(noKid));
    assert.equal(decodeProtectedHeader(dec(out.body)).cty, undefined);
  });

  describe('refuses with attestation_failed before anything is sealed', () => {
    const cases: Array<[string, (file: string) => Promise<void>, string[]]> = [
      ['only untrusted measurements', async (f) => writeJson(f, { keys: [{ ...(await keyPair()).publicJwk, 'x-attestation': UNTRUSTED }] }), [TRUSTED]],
      ['no trusted measurements configured', async (f) => writeJson(f, { keys: [{ ...(await keyPair()).publicJwk, 'x-attestation': TRUSTED }] }), []],
      ['keys without measurements', async (f) => writeJson(f, { keys: [(await keyPair()).publicJwk] }), [TRUSTED]],
      ['an empty key set', async (f) => writeJson(f, { keys: [] }), [TRUSTED]],
      ['a missing recipients file', async () => undefined, [TRUSTED]],
      ['a file that is not JSON', async (f) => (await import('node:fs/promises')).writeFile(f, 'not json'), [TRUSTED]],
      ['a file without "keys"', async (f) => writeJson(f, [{ kty: 'EC' }]), [TRUSTED]],
      ['a private key in the recipients file', async (f) => writeJson(f, { keys: [{ ...(await keyPair()).privateJwk, 'x-attestation': TRUSTED }] }), [TRUSTED]],
      ['an RSA key', async (f) => writeJson(f, { keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB', kid: 'r', 'x-attestation': TRUSTED }] }), [TRUSTED]],
      ['a P-384 key', async (f) => writeJson(f, { keys: [{ kty: 'EC', crv: 'P-384', x: 'AA', y: 'AA', kid: 'p', 'x-attestation': TRUSTED }] }), [TRUSTED]],
      ['a signing key (use: sig)', async (f) => writeJson(f, { keys: [{ ...(await keyPair()).publicJwk, use: 'sig', 'x-attestation': TRUSTED }] }), [TRUSTED]],
      ['a malformed point', async (f) => writeJson(f, { keys: [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', kid: 'bad', 'x-attestation': TRUSTED }] }), [TRUSTED]],
      ['a non-string measurement', async (f) => writeJson(f, { keys: [{ ...(await keyPair()).publicJwk, 'x-attestation': 7 }] }), [TRUSTED]],
    ];
    cases.forEach(([name, setup, trusted], i) => {
      it(name, async () => {
        const file = join(dir, `refuse-${i}.jwks.json`);
        await setup(file);
        const policy = teePolicy(dir, trusted, file);
        await assert.rejects(handler.protect(enc(SECRET), ctx(policy, domainOf(policy, 'pii_inference'), 'application/json')), (e: unknown) => {
          assert.ok(rejects('attestation_failed')(e), String(e));
          assert.ok(!(e as Error).message.includes('Jane Roe'), 'error message carries no payload');
          return true;
        });
      });
    });
  });

  describe('responses sealed back to the domain key', () => {
    it('opens a JWE for this domain and restores its content type', async () => {
      const policy = teePolicy(dir);
      const domain = domainOf(policy, 'pii_inference');
      const written = await tierModule.ensureDevKeys(policy, domain);
      assert.ok(written.includes(domain.keyringFile));
      const ring = await loadKeyring(domain.keyringFile);
      const compact = await sealForDomain(enc('{"diagnosis":"ok"}'), ring, { domain: 'pii_inference', contentType: 'application/json' });
      const out = await handler.unprotect(enc(`${compact}\n`), ctx(policy, domain, 'application/jose', 'response'));
      assert.ok(out);
      assert.equal(dec(out.body), '{"diagnosis":"ok"}');
      assert.equal(out.contentType, 'application/json');
    });

    it('passes a body that is not a JWE', async () => {
      const policy = teePolicy(dir);
      const domain = domainOf(policy, 'pii_inference');
      assert.equal(await handler.unprotect(enc('{"error":"busy"}'), ctx(policy, domain, 'application/json', 'response')), undefined);
      assert.equal(await handler.unprotect(new Uint8Array(), ctx(policy, domain, undefined, 'response')), undefined);
    });

    it('rejects a JWE of another domain, a tampered JWE and an enclave-sealed request echoed back', async () => {
      const policy = teePolicy(dir);
      const domain = domainOf(policy, 'pii_inference');
      await tierModule.ensureDevKeys(policy, domain);
      const ring = await loadKeyring(domain.keyringFile);
      const foreign = await sealForDomain(enc('x'), ring, { domain: 'agent_memory' });
      await assert.rejects(handler.unprotect(enc(foreign), ctx(policy, domain, undefined, 'response')), rejects('payload_rejected'));
      const good = await sealForDomain(enc('secret'), ring, { domain: 'pii_inference' });
      const parts = good.split('.');
      parts[3] = (parts[3]![0] === 'A' ? 'B' : 'A') + parts[3]!.slice(1);
      await assert.rejects(handler.unprotect(enc(parts.join('.')), ctx(policy, domain, undefined, 'response')), rejects('payload_rejected'));
      const sealed = await handler.protect(enc(SECRET), ctx(policy, domain, 'application/json'));
      await assert.rejects(handler.unprotect(sealed.body, ctx(policy, domain, undefined, 'response')), rejects('payload_rejected'));
    });
  });

  describe('dev keys and the operator path', () => {
    it('keys init writes keyring, enclave key pair (0600) and recipients with the first trusted measurement, once', async () => {
      const { dir: d, cleanup: c } = await tempDir();
      try {
        const second = `sha256:${'b2'.repeat(32)}`;
        const policy = teePolicy(d, [TRUSTED, second]);
        const domain = domainOf(policy, 'pii_inference');
        const written = await tierModule.ensureDevKeys(policy, domain);
        const privateFile = join(policy.keys.dir, 'pii_inference.enclave.private.jwk.json');
        assert.deepEqual(new Set(written), new Set([domain.keyringFile, privateFile, domain.computation!.recipientsFile!]));
        assert.equal((await stat(privateFile)).mode & 0o777, 0o600);
        assert.equal((await stat(domain.keyringFile)).mode & 0o777, 0o600);
        const recipients = JSON.parse(await (await import('node:fs/promises')).readFile(domain.computation!.recipientsFile!, 'utf8')) as { keys: Array<Record<string, unknown>> };
        assert.equal(recipients.keys.length, 1);
        assert.equal(recipients.keys[0]!['x-attestation'], TRUSTED);
        assert.equal(recipients.keys[0]!.d, undefined);
        assert.deepEqual(await tierModule.ensureDevKeys(policy, domain), []);
        const ids = await tierModule.keyIds(policy, domain);
        assert.equal(ids.length, 2);
        assert.ok(ids.includes(String(recipients.keys[0]!.kid)));

        const sealed = await handler.protect(enc(SECRET), ctx(policy, domain, 'application/json'));
        assert.equal(dec(await tierModule.openForOperator(sealed.body, { policy, domain, keyFiles: [] })), SECRET);
        assert.equal(dec(await tierModule.openForOperator(sealed.body, { policy, domain, keyFiles: [privateFile] })), SECRET);
        const wrong = join(d, 'wrong.jwk.json');
        await writeJson(wrong, (await keyPair()).privateJwk);
        await assert.rejects(tierModule.openForOperator(sealed.body, { policy, domain, keyFiles: [wrong] }), rejects('payload_rejected'));
        // The operator can also open a response the enclave sealed to the domain key.
        const resp = await sealForDomain(enc('result'), await loadKeyring(domain.keyringFile), { domain: 'pii_inference' });
        assert.equal(dec(await tierModule.openForOperator(enc(resp), { policy, domain, keyFiles: [] })), 'result');
      } finally {
        await c();
      }
    });

    it('with no trusted measurement keys init makes only the domain keyring', async () => {
      const { dir: d, cleanup: c } = await tempDir();
      try {
        const policy = teePolicy(d, []);
        const domain = domainOf(policy, 'pii_inference');
        assert.deepEqual(await tierModule.ensureDevKeys(policy, domain), [domain.keyringFile]);
        await assert.rejects(handler.protect(enc(SECRET), ctx(policy, domain, 'application/json')), rejects('attestation_failed'));
      } finally {
        await c();
      }
    });
  });
});
