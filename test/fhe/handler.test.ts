import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeProtectedHeader } from 'jose';
import { PayloadError } from '../../src/errors.js';
import { sealLoadCount, tierModule } from '../../src/protect/fhe/index.js';
import { fheKeyFiles, loadFheKeys } from '../../src/protect/fhe/keys.js';
import { guardSeal } from '../../src/protect/fhe/seal.js';
import { parsePolicy } from '../../src/config/load.js';
import { assertClose, copyFheKeys, dec, enc, fheFixture, POLICY_YAML, type FheFixture } from './setup.js';

type FheJson = { $fhe: { key_id: string; length: number; scalar?: true; ciphertext?: string; slots?: number; ciphertexts?: string[] } };

const rejected = (e: unknown): boolean => e instanceof PayloadError && e.code === 'payload_rejected';

describe('FHE tier handler', () => {
  let fx: FheFixture;
  const open = async (body: Uint8Array, domain = 'fin'): Promise<unknown> =>
    dec(await tierModule.openForOperator(body, { policy: fx.policy, domain: fx.domain(domain), keyFiles: [] }));
  const protect = async (doc: unknown, domain = 'fin'): Promise<unknown> => dec((await tierModule.handler.protect(enc(doc), fx.ctx(domain))).body);

  before(async () => {
    fx = await fheFixture();
    await tierModule.ensureDevKeys(fx.policy, fx.domain('fin'));
    await tierModule.ensureDevKeys(fx.policy, fx.domain('fin_paths'));
    // Same CKKS key as "fin" under another name: only its max_length differs (saves a key generation).
    await copyFheKeys(fx.policy.keys.dir, 'fin', fx.policy.keys.dir, 'fin_small', { secret: true });
    await tierModule.ensureDevKeys(fx.policy, fx.domain('fin_small'));
  });
  after(() => fx.cleanup());

  it('protects every number and string, keeps the shape, and the owner opens it back', async () => {
    const doc = {
      customer: 'Jane Roe — ÿ',
      active: true,
      closed: false,
      note: null,
      balance: 1523.75,
      features: [0.42, 1.7, -0.3, 12.5, 0.08],
      matrix: [[1, 2], [3, 4.5]],
      mixed: [1, 'two', { three: 3 }],
      empty: [],
      ['__proto__']: { polluted: 1 },
    };
    const body = enc(doc);
    const result = await tierModule.handler.protect(body, fx.ctx('fin'));
    assert.equal(result.contentType, 'application/json');
    assert.deepEqual(result.headers, { 'x-mesh-protected': 'FHE' });
    const p = dec(result.body) as Record<string, unknown>;
    // Nothing readable is left: every leaf is a $fhe value, a JWE of this domain, null or [].
    const leaves = (v: unknown): unknown[] =>
      v === null || typeof v !== 'object' ? [v] : '$fhe' in v ? [] : Object.values(v as object).flatMap(leaves);
    for (const leaf of leaves(p)) {
      if (leaf === null) continue;
      assert.equal(typeof leaf, 'string');
      assert.equal((decodeProtectedHeader(leaf as string) as Record<string, unknown>).mesh_domain, 'fin');
    }
    assert.equal(leaves(p).length, 5, "customer, active, closed, note, mixed[1]");
    assert.deepEqual(Object.keys(p), Object.keys(doc), 'member names and order stay');
    const features = p.features as FheJson;
    assert.equal(features.$fhe.length, 5);
    assert.equal(typeof features.$fhe.ciphertext, 'string');
    assert.equal((p.balance as FheJson).$fhe.scalar, true);
    assert.equal((p.matrix as FheJson[]).length, 2, 'a matrix becomes one $fhe per row');
    assert.equal((p.matrix as FheJson[])[1]!.$fhe.length, 2);
    assert.equal(p.note, null);
    assert.deepEqual(p.empty, []);
    const header = decodeProtectedHeader(p.customer as string) as Record<string, unknown>;
    assert.equal(header.mesh_domain, 'fin');
    assert.equal(header.enc, 'A256GCM');
    assert.equal(Object.getPrototypeOf(p), Object.prototype);

    assertClose(await open(result.body), JSON.parse(JSON.stringify(doc)));
    const back = await tierModule.handler.unprotect(result.body, fx.ctx('fin', 'response'));
    assert.ok(back);
    assert.equal(back.contentType, 'application/json');
    assertClose(dec(back.body), JSON.parse(JSON.stringify(doc)));
  });

  it('round-trips random numeric vectors within 1e-6 relative (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.integer({ min: -1000, max: 1000 })), { minLength: 1, maxLength: 64 }),
        async (values) => {
          const clean = values.map((v) => (Object.is(v, -0) ? 0 : v));
          assertClose(await open(enc(await protect({ v: clean }))), { v: clean });
        },
      ),
      { numRuns: 25 },
    );
  });

  it('with paths, encrypts what they name and seals every other value', async () => {
    const doc = { id: 7, features: [1.25, -2.5, 3.75], rows: [{ x: 10, y: 20 }, { x: [1, 2] }], total: 99.5, label: 'q3' };
    const p = (await protect(doc, 'fin_paths')) as Record<string, unknown>;
    assert.equal((p.features as FheJson).$fhe.length, 3);
    assert.equal((p.total as FheJson).$fhe.scalar, true);
    const rows = p.rows as Record<string, unknown>[];
    assert.equal((rows[0]!.x as FheJson).$fhe.scalar, true);
    assert.equal((rows[1]!.x as FheJson).$fhe.length, 2);
    assert.equal(typeof rows[0]!.y, 'string', 'numbers outside the paths are JWE-sealed');
    assert.equal(typeof p.id, 'string');
    assertClose(await open(enc(p), 'fin_paths'), doc);
    // A listed path that is absent is fine.
    assertClose(await open(enc(await protect({ label: 'only' }, 'fin_paths')), 'fin_paths'), { label: 'only' });
  });

  it('packs long arrays into as many ciphertexts as 4096 slots require', async () => {
    const long = Array.from({ length: 9000 }, (_, i) => Math.sin(i) * 100);
    const p = (await protect({ features: long }, 'fin_paths')) as { features: FheJson };
    assert.equal(p.features.$fhe.length, 9000);
    assert.equal(p.features.$fhe.slots, 4096);
    assert.equal(p.features.$fhe.ciphertexts!.length, 3);
    assert.equal(p.features.$fhe.ciphertext, undefined);
    assertClose(await open(enc(p), 'fin_paths'), { features: long });
  });

  it('rejects bad input with payload_rejected and never returns plaintext', async () => {
    const bad: [string, string, string | undefined][] = [
      ['fin_paths', '{"features": [1, "two", 3]}', undefined],
      ['fin_paths', '{"features": [[1, 2], [3, 4]]}', undefined],
      ['fin_paths', '{"features": {"a": 1}}', undefined],
      ['fin_paths', '{"features": "12"}', undefined],
      ['fin_paths', '{"total": 1e400}', undefined],
      ['fin_paths', `{"features": [${Array.from({ length: 10001 }, () => '1').join(',')}]}`, undefined],
      ['fin', '{"x": 1e999}', undefined],
      ['fin', '{"x": NaN}', undefined],
      ['fin', '{"x": [1, Infinity]}', undefined],
      ['fin', 'not json', undefined],
      ['fin', '{"x": [1, 2]}', 'text/plain'],
      ['fin_small', '{"x": [1, 2, 3, 4, 5, 6, 7, 8, 9]}', undefined],
    ];
    for (const [domain, text, type] of bad) {
      await assert.rejects(tierModule.handler.protect(new TextEncoder().encode(text), fx.ctx(domain, 'request', type)), rejected, `${domain}: ${text.slice(0, 40)}`);
    }
    const deep = `${'['.repeat(200)}1${']'.repeat(200)}`;
    await assert.rejects(tierModule.handler.protect(new TextEncoder().encode(deep), fx.ctx('fin')), rejected, 'nesting');
    const scalars = JSON.stringify({ many: Array.from({ length: 600 }, (_, i) => (i % 2 ? i : 'x')) });
    await assert.rejects(
      tierModule.handler.protect(new TextEncoder().encode(scalars), fx.ctx('fin')),
      (e: unknown) => e instanceof PayloadError && e.code === 'payload_too_large',
      'more ciphertexts than one body may hold',
    );
    // At the limit is fine.
    await tierModule.handler.protect(enc({ x: [1, 2, 3, 4, 5, 6, 7, 8] }), fx.ctx('fin_small'));
  });

  it('rejects a ciphertext under another key, in transit and when opening', async () => {
    const fromFin = (await protect({ v: [1, 2, 3] })) as { v: FheJson };
    await assert.rejects(tierModule.handler.protect(enc(fromFin), fx.ctx('fin_paths')), rejected, 'foreign $fhe passing through');
    await assert.rejects(open(enc(fromFin), 'fin_paths'), rejected, 'foreign key id');
    const otherId = (await tierModule.keyIds(fx.policy, fx.domain('fin_paths')))[0]!;
    const forged = { v: { $fhe: { ...fromFin.v.$fhe, key_id: otherId } } };
    await assert.rejects(open(enc(forged), 'fin_paths'), rejected, 'ciphertext of another secret key under a forged key id');
    // A secret key of another key pair (`open --key`) is refused when loaded, before any decryption.
    const otherSecret = fheKeyFiles(fx.policy.keys.dir, 'fin_paths').secret;
    await assert.rejects(
      tierModule.openForOperator(enc(fromFin), { policy: fx.policy, domain: fx.domain('fin'), keyFiles: [otherSecret] }),
      (e: unknown) => rejected(e) && /does not belong/.test((e as Error).message),
    );
    // A $fhe value of the domain's own key passes through unchanged.
    const again = (await protect(fromFin)) as { v: FheJson };
    assert.deepEqual(again, fromFin);
  });

  it('rejects corrupted ciphertexts, and stays usable afterwards', async () => {
    const good = (await protect({ v: [1.5, 2.5, 3.5] })) as { v: FheJson };
    const bytes = Buffer.from(good.v.$fhe.ciphertext!, 'base64');
    const flipped = (pos: number): string => {
      const b = Buffer.from(bytes);
      b[pos] = b[pos]! ^ 0x5a;
      return b.toString('base64');
    };
    // Broken structure (header, framing, encoding): refused everywhere, even passing through.
    const structural = [0, 3, 5, 9, 16].map(flipped);
    structural.push(bytes.subarray(0, bytes.length - 100).toString('base64'), 'not*base64', '', Buffer.alloc(2000).toString('base64'));
    // Damaged data: only the secret key can tell (CKKS has no MAC); the owner refuses to open it.
    const data = [21, 40, 200, Math.floor(bytes.length / 2), bytes.length - 3].map(flipped);
    for (const c of [...structural, ...data]) {
      const body = enc({ v: { $fhe: { ...good.v.$fhe, ciphertext: c } } });
      await assert.rejects(open(body), rejected);
      if (structural.includes(c)) await assert.rejects(tierModule.handler.protect(body, fx.ctx('fin')), rejected);
    }
    await assert.rejects(open(enc({ v: { $fhe: { ...good.v.$fhe, length: 5000 } } })), rejected, 'length beyond one ciphertext');
    await assert.rejects(open(enc({ v: { $fhe: { ...good.v.$fhe, extra: 1 } } })), rejected, 'unknown member');
    assertClose(await open(enc(good)), { v: [1.5, 2.5, 3.5] });
  });

  it('passes empty bodies, and leaves non-protected responses alone', async () => {
    const empty = await tierModule.handler.protect(new Uint8Array(0), fx.ctx('fin'));
    assert.equal(empty.body.length, 0);
    assert.equal(await tierModule.handler.unprotect(enc({ plain: 'error' }), fx.ctx('fin', 'response')), undefined);
    assert.equal(await tierModule.handler.unprotect(new TextEncoder().encode('oops'), fx.ctx('fin', 'response', 'text/plain')), undefined);
  });

  it('encrypts with the public key where the secret key is absent, and only the owner opens', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mesh-pep-fhe-pub-'));
    try {
      const keysDir = path.join(dir, 'keys');
      const yaml = POLICY_YAML;
      const file = path.join(dir, 'policy.yaml');
      const { policy } = parsePolicy(yaml, file);
      assert.ok(policy);
      await copyFheKeys(fx.policy.keys.dir, 'fin', keysDir, 'fin', { secret: false });
      await copyFile(fx.domain('fin').keyringFile, path.join(keysDir, 'fin.jwks.json'));
      const ctx = { policy, domain: policy.domainsByName.get('fin')!, contentType: 'application/json', direction: 'request' as const };
      const values = Array.from({ length: 4096 }, (_, i) => i / 7);
      const pubBody = await tierModule.handler.protect(enc({ v: values }), ctx);
      const pub = dec(pubBody.body) as { v: FheJson };
      const seeded = (await protect({ v: values })) as { v: FheJson };
      const perValue = (o: FheJson): number => o.$fhe.ciphertext!.length / 4096;
      assert.ok(perValue(pub.v) < 115, `public-key mode ${perValue(pub.v)} B/value`);
      assert.ok(perValue(seeded.v) < 60, `seeded mode ${perValue(seeded.v)} B/value`);
      assert.ok(perValue(pub.v) > 1.5 * perValue(seeded.v), 'the secret key holder sends seeded (smaller) ciphertexts');
      // Not the key owner: responses pass as ciphertext, and the operator cannot open.
      assert.equal(await tierModule.handler.unprotect(pubBody.body, { ...ctx, direction: 'response' }), undefined);
      await assert.rejects(tierModule.openForOperator(pubBody.body, { policy, domain: ctx.domain, keyFiles: [] }), rejected);
      // The owner opens what the public-key side encrypted.
      assertClose(await open(pubBody.body), { v: values });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a SEAL abort resets the engine for this input only; later requests work', async () => {
    const good = (await protect({ v: [1.5, 2.5, 3.5] })) as { v: FheJson };
    const bytes = Buffer.from(good.v.$fhe.ciphertext!, 'base64');
    bytes[9] = bytes[9]! ^ 0x5a; // the SEAL header's size field: the pre-check refuses it, SEAL itself aborts
    const keys = await loadFheKeys(fx.policy.keys.dir, 'fin');
    const before = sealLoadCount();
    await assert.rejects(
      guardSeal(async () => keys.seal.CipherText().loadArray(keys.context, bytes)),
      (e: unknown) => rejected(e) && /aborted/.test((e as Error).message),
    );
    assertClose(await open(enc(good)), { v: [1.5, 2.5, 3.5] });
    assert.equal(sealLoadCount(), before + 1, 'a fresh instance was loaded once');
  });

  it('reports key ids: the CKKS key, then the oct keyring', async () => {
    const ids = await tierModule.keyIds(fx.policy, fx.domain('fin'));
    assert.equal(ids.length, 2);
    assert.match(ids[0]!, /^ckks-[0-9a-f]{16}$/);
    assert.deepEqual(await tierModule.ensureDevKeys(fx.policy, fx.domain('fin')), [], 'existing keys are never replaced');
  });
});
