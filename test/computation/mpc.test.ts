import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { PayloadError } from '../../src/errors.js';
import {
  combineSums,
  MODULUS,
  openPartyBundle,
  parseEnvelope,
  reconstruct,
  sumShares,
  tierModule,
  type OpenedBundle,
} from '../../src/protect/computation/index.js';
import { ctx, dec, domainOf, enc, keyPair, mpcPolicy, tempDir, writeJson, type KeyPair } from './fixtures.js';

const { handler } = tierModule;

function rejects(reason: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof PayloadError, String(e));
    assert.equal(e.code, reason, e.message);
    return true;
  };
}

describe('COMPUTATION mpc: additive shares sealed per party', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const keys = new Map<string, KeyPair>();
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    // Mixed curves: a party may publish P-256 or X25519.
    for (const [name, crv] of [['aws', 'P-256'], ['gcp', 'X25519'], ['azure', 'P-256']] as const) {
      const pair = await keyPair(crv);
      keys.set(name, pair);
      await writeJson(join(dir, 'parties', `${name}.jwks.json`), { keys: [(await keyPair()).publicJwk, pair.publicJwk] });
    }
  });
  after(async () => cleanup());

  async function protect(body: unknown, parties: readonly string[], fields: readonly string[] = [], contentType = 'application/json') {
    const policy = mpcPolicy(dir, parties, fields);
    const domain = domainOf(policy, 'cross_cloud');
    const out = await handler.protect(enc(typeof body === 'string' ? body : JSON.stringify(body)), ctx(policy, domain, contentType));
    return { out, policy, domain };
  }

  async function openAll(body: Uint8Array): Promise<OpenedBundle[]> {
    const env = parseEnvelope(body);
    return Promise.all(env.parties.map((p) => openPartyBundle(p, keys.get(p.name)!.privateJwk)));
  }

  it('splits listed fields, seals one bundle per party, and all bundles reconstruct the document exactly', async () => {
    const doc = {
      customer: 'ACME Corp',
      revenue: 1234567.89,
      items: [
        { sku: 'a', amount: 19.99, qty: 3 },
        { sku: 'b', amount: -0.000001, qty: 1 },
      ],
      series: [1, 2.5, -3.25, 1e21, -1e21, 0.000001],
      untouched: 42,
    };
    const fields = ['$.revenue', 'items[*].amount', '$.series', '$.missing'];
    const { out } = await protect(doc, ['aws', 'gcp', 'azure'], fields);
    assert.equal(out.contentType, 'application/json');
    assert.equal(out.headers['x-mesh-protected'], 'COMPUTATION');
    const text = dec(out.body);
    // Markers that cannot occur in base64url or in decimal share strings by chance.
    for (const leak of ['ACME Corp', '1234567.89', '"sku"', 'untouched']) assert.ok(!text.includes(leak), `body leaks ${leak}`);
    const env = parseEnvelope(out.body);
    assert.equal(env.scheme, 'additive');
    assert.equal(env.modulus, MODULUS.toString());
    assert.equal(env.scale, 1_000_000);
    assert.deepEqual(env.fields, fields);
    assert.deepEqual(
      env.parties.map((p) => p.name),
      ['aws', 'gcp', 'azure'],
    );
    for (const p of env.parties) {
      assert.equal(p.kid, keys.get(p.name)!.publicJwk.kid, 'sealed to the last key of the party set');
      const h = decodeProtectedHeader(p.bundle) as Record<string, unknown>;
      assert.equal(h.alg, 'ECDH-ES+A256KW');
      assert.equal(h.enc, 'A256GCM');
      assert.equal(h.mesh_domain, 'cross_cloud');
      assert.equal(h.mpc_party, p.name);
      assert.equal(h.mpc_id, env.id);
    }
    const bundles = await openAll(out.body);
    assert.deepEqual([...bundles[0]!.shares.keys()].sort(), ['/items/0/amount', '/items/1/amount', '/revenue', '/series/0', '/series/1', '/series/2', '/series/3', '/series/4', '/series/5'].sort());
    // Each party sees the non-shared remainder, with shared slots null.
    assert.deepEqual((bundles[1]!.document as typeof doc).items[0], { sku: 'a', amount: null, qty: 3 });
    const rebuilt = reconstruct(bundles);
    assert.deepEqual(rebuilt.document, doc);
    assert.equal(rebuilt.values['/revenue'], 1234567.89);
    assert.equal(rebuilt.contentType, 'application/json');
    // Order of bundles does not matter.
    assert.deepEqual(reconstruct([bundles[2]!, bundles[0]!, bundles[1]!]).document, doc);
  });

  it('with no fields listed shares every number, also inside arrays of objects', async () => {
    const doc = [{ a: 1, b: { c: 2.5, d: 'x', e: [3, 4] } }, 5, null, true];
    const { out } = await protect(doc, ['aws', 'gcp']);
    const bundles = await openAll(out.body);
    assert.deepEqual([...bundles[0]!.shares.keys()], ['/0/a', '/0/b/c', '/0/b/e/0', '/0/b/e/1', '/1']);
    assert.deepEqual(reconstruct(bundles).document, doc);
  });

  it('keeps member names that need JSON Pointer escaping (and "__proto__") as plain members', async () => {
    const doc = JSON.parse('{"a/b":1,"c~d":{"__proto__":2},"e.f":3}') as unknown;
    const { out } = await protect(JSON.stringify(doc), ['aws', 'gcp'], ['$["a/b"]', "$['c~d']['__proto__']", '$["e.f"]']);
    const bundles = await openAll(out.body);
    assert.deepEqual([...bundles[0]!.shares.keys()].sort(), ['/a~1b', '/c~0d/__proto__', '/e.f']);
    const rebuilt = reconstruct(bundles);
    assert.equal(JSON.stringify(rebuilt.document), JSON.stringify(doc));
  });

  it('rounds beyond six decimals half away from zero and returns exact values within the precision', async () => {
    const doc = { v: [0.1234565, -0.1234565, 1 / 3, 4e-7, 5e-7, -0] };
    const { out } = await protect(doc, ['aws', 'gcp']);
    const { document } = reconstruct(await openAll(out.body));
    assert.deepEqual((document as typeof doc).v, [0.123457, -0.123457, 0.333333, 0, 0.000001, 0]);
    assert.ok(Object.is((document as typeof doc).v[5], 0));
  });

  it('needs a bundle from every party: N−1 bundles do not reconstruct', async () => {
    const { out } = await protect({ x: 7 }, ['aws', 'gcp', 'azure']);
    const bundles = await openAll(out.body);
    assert.throws(() => reconstruct(bundles.slice(0, 2)), rejects('payload_rejected'));
    assert.throws(() => reconstruct([bundles[0]!, bundles[0]!, bundles[1]!]), rejects('payload_rejected'));
    // A party key opens only its own bundle.
    const env = parseEnvelope(out.body);
    await assert.rejects(openPartyBundle(env.parties[0]!, keys.get('gcp')!.privateJwk), rejects('payload_rejected'));
  });

  it('refuses bundles of different splits and detects altered shares', async () => {
    const a = await openAll((await protect({ x: 7 }, ['aws', 'gcp'])).out.body);
    const b = await openAll((await protect({ x: 7 }, ['aws', 'gcp'])).out.body);
    assert.throws(() => reconstruct([a[0]!, b[1]!]), rejects('payload_rejected'));
    const altered: OpenedBundle = { ...a[0]!, shares: new Map([['/x', (a[0]!.shares.get('/x')! + 12345n) % MODULUS]]) };
    // Off by 12345 scaled units is in range (cannot be detected without a MAC) but changes the value; a
    // random alteration lands out of range with overwhelming probability.
    assert.notEqual(reconstruct([altered, a[1]!]).values['/x'], 7);
    const randomised: OpenedBundle = { ...a[0]!, shares: new Map([['/x', (a[0]!.shares.get('/x')! + (1n << 120n)) % MODULUS]]) };
    assert.throws(() => reconstruct([randomised, a[1]!]), rejects('payload_rejected'));
  });

  it('a tampered bundle or envelope fails to open', async () => {
    const { out } = await protect({ x: 7 }, ['aws', 'gcp']);
    const env = parseEnvelope(out.body);
    const parts = env.parties[0]!.bundle.split('.');
    parts[3] = (parts[3]![0] === 'A' ? 'B' : 'A') + parts[3]!.slice(1);
    await assert.rejects(openPartyBundle(parts.join('.'), keys.get('aws')!.privateJwk), rejects('payload_rejected'));
    assert.throws(() => parseEnvelope('{"x":1}'), rejects('payload_rejected'));
    assert.throws(() => parseEnvelope('nope'), rejects('payload_rejected'));
  });

  it('sum of shares: each party adds its shares locally; combining the sums reveals the plaintext total', async () => {
    const amounts = Array.from({ length: 40 }, (_, i) => Math.round((i * 37.13 - 500) * 100) / 100);
    const perParty = new Map<string, OpenedBundle[]>([['aws', []], ['gcp', []], ['azure', []]]);
    for (const amount of amounts) {
      const { out } = await protect({ amount, region: 'eu' }, ['aws', 'gcp', 'azure'], ['$.amount']);
      for (const b of await openAll(out.body)) perParty.get(b.party)!.push(b);
    }
    const sums = [...perParty.values()].map((bundles) => sumShares(bundles, ['/amount']));
    // A single party's sum says nothing: it is a uniform field element, not the total.
    const cents = amounts.reduce((acc, a) => acc + Math.round(a * 100), 0);
    for (const s of sums) assert.notEqual(s.sum, String(cents * 10_000));
    const { total, terms } = combineSums(sums);
    assert.equal(terms, amounts.length);
    assert.equal(total, cents / 100);
    // All parties must have summed the same records; a missing party is refused.
    assert.throws(() => combineSums(sums.slice(0, 2)), rejects('payload_rejected'));
    const partial = sumShares(perParty.get('aws')!.slice(1), ['/amount']);
    assert.throws(() => combineSums([partial, sums[1]!, sums[2]!]), rejects('payload_rejected'));
    assert.throws(() => sumShares([...perParty.get('aws')!, perParty.get('gcp')![0]!]), rejects('payload_rejected'));
  });

  it('openForOperator reconstructs with every party key file, and refuses with one missing', async () => {
    const { out, policy, domain } = await protect({ total: 99.5, name: 'n' }, ['aws', 'gcp', 'azure'], ['total']);
    const files: string[] = [];
    for (const [name, pair] of keys) {
      const f = join(dir, `${name}.op.private.jwk.json`);
      await writeJson(f, pair.privateJwk);
      files.push(f);
    }
    assert.deepEqual(JSON.parse(dec(await tierModule.openForOperator(out.body, { policy, domain, keyFiles: files }))), { total: 99.5, name: 'n' });
    await assert.rejects(tierModule.openForOperator(out.body, { policy, domain, keyFiles: files.slice(0, 2) }), rejects('payload_rejected'));
  });

  describe('bad input is rejected, nothing is forwarded', () => {
    const cases: Array<[string, string, string[], string, string?]> = [
      ['a string "NaN" at a numeric path', '{"v":"NaN"}', ['v'], 'payload_rejected'],
      ['a numeric string at a numeric path', '{"v":"42"}', ['v'], 'payload_rejected'],
      ['1e400 (parses as Infinity)', '{"v":1e400}', ['v'], 'payload_rejected'],
      ['-1e400 in every-number mode', '{"a":{"v":-1e400}}', [], 'payload_rejected'],
      ['a number beyond the fixed-point range', '{"v":1.000001e21}', ['v'], 'payload_rejected'],
      ['a huge number in every-number mode', '{"v":[1,2,1e300]}', [], 'payload_rejected'],
      ['null at a numeric path', '{"v":null}', ['v'], 'payload_rejected'],
      ['an object at a numeric path', '{"v":{"w":1}}', ['v'], 'payload_rejected'],
      ['a boolean inside a listed array', '{"v":[1,true]}', ['v'], 'payload_rejected'],
      ['a nested array at a listed path', '{"v":[[1,2],[3,4]]}', ['v'], 'payload_rejected'],
      ['a nested array in every-number mode', '{"m":[[1]]}', [], 'payload_rejected'],
      ['a body that is not JSON', '{"v":1', [], 'payload_rejected'],
      ['a JSON scalar body', '42', [], 'payload_rejected'],
      ['invalid UTF-8', '\uFFFD', [], 'payload_rejected'],
      ['a non-JSON content type', '{"v":1}', [], 'payload_rejected', 'text/plain'],
      ['nesting deeper than the limit', `${'{"a":'.repeat(200)}1${'}'.repeat(200)}`, [], 'payload_rejected'],
    ];
    it('an unsupported field path is refused when the policy loads, not per request', () => {
      assert.throws(() => mpcPolicy(dir, ['aws', 'gcp'], ['$..v']), /computation\.fields\[0\]: recursive descent is not supported/);
    });
    for (const [name, body, fields, reason, type] of cases) {
      it(name, async () => {
        const bytes = name === 'invalid UTF-8' ? new Uint8Array([0x7b, 0xff, 0x7d]) : enc(body);
        const policy = mpcPolicy(dir, ['aws', 'gcp'], fields);
        await assert.rejects(handler.protect(bytes, ctx(policy, domainOf(policy, 'cross_cloud'), type ?? 'application/json')), rejects(reason));
      });
    }

    it('a party whose key file is missing or holds a private key: attestation_failed', async () => {
      const policy = mpcPolicy(dir, ['aws', 'nobody']);
      await assert.rejects(handler.protect(enc('{"v":1}'), ctx(policy, domainOf(policy, 'cross_cloud'), 'application/json')), rejects('attestation_failed'));
      await writeJson(join(dir, 'parties', 'leaky.jwks.json'), { keys: [keys.get('aws')!.privateJwk] });
      const leaky = mpcPolicy(dir, ['aws', 'leaky']);
      await assert.rejects(handler.protect(enc('{"v":1}'), ctx(leaky, domainOf(leaky, 'cross_cloud'), 'application/json')), rejects('attestation_failed'));
    });

    it('error messages name the field, never the value', async () => {
      const policy = mpcPolicy(dir, ['aws', 'gcp'], ['secret']);
      await assert.rejects(handler.protect(enc('{"secret":"4111111111111111"}'), ctx(policy, domainOf(policy, 'cross_cloud'), 'application/json')), (e: unknown) => {
        assert.ok(e instanceof PayloadError);
        assert.match(e.message, /\/secret/);
        assert.ok(!e.message.includes('4111'));
        return true;
      });
    });
  });

  it('keys init makes one key pair per party with a missing key set, and open uses them by default', async () => {
    const { dir: d, cleanup: c } = await tempDir();
    try {
      const policy = mpcPolicy(d, ['east', 'west']);
      const domain = domainOf(policy, 'cross_cloud');
      const written = await tierModule.ensureDevKeys(policy, domain);
      assert.deepEqual(
        new Set(written),
        new Set([domain.keyringFile, join(d, 'parties', 'east.private.jwk.json'), join(d, 'parties', 'east.jwks.json'), join(d, 'parties', 'west.private.jwk.json'), join(d, 'parties', 'west.jwks.json')]),
      );
      const pub = JSON.parse(await readFile(join(d, 'parties', 'east.jwks.json'), 'utf8')) as { keys: Array<Record<string, unknown>> };
      assert.equal(pub.keys[0]!.d, undefined);
      assert.equal(pub.keys[0]!.crv, 'P-256');
      assert.deepEqual(await tierModule.ensureDevKeys(policy, domain), []);
      assert.equal((await tierModule.keyIds(policy, domain)).length, 3);
      const body = { readings: [1.5, 2.25], site: 's1' };
      const sealed = await handler.protect(enc(JSON.stringify(body)), ctx(policy, domain, 'application/json; charset=utf-8'));
      assert.deepEqual(JSON.parse(dec(await tierModule.openForOperator(sealed.body, { policy, domain, keyFiles: [] }))), body);
    } finally {
      await c();
    }
  });
});
