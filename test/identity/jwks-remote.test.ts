import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CredentialError } from '../../src/errors.js';
import { RemoteJwksSource } from '../../src/identity/jwks-remote.js';
import { CredentialVerifier } from '../../src/identity/verifier.js';
import { claims, jwks, newKey, serveJson, settings, sign, startServer, type TestKey, type TestServer } from './helpers.js';

const T0 = 1_800_000_000_000;
const COOLDOWN = 30_000;
const MAX_AGE = 300_000;

let keyA: TestKey;
let keyB: TestKey;
let keyC: TestKey;
let keyD: TestKey;

before(async () => {
  [keyA, keyB, keyC, keyD] = await Promise.all([newKey('ES256'), newKey('ES256'), newKey('EdDSA'), newKey('ES256')]);
});

const isInvalid = (e: unknown) => e instanceof CredentialError && e.code === 'invalid_credential';

/** A verifier over a loopback JWKS server with an injected clock; real timers never fire during a test. */
async function setup(server: TestServer, timeoutMs = 5_000) {
  const clock = { t: T0 };
  const errors: Error[] = [];
  const v = new CredentialVerifier(settings({ jwksUri: `${server.url}/jwks.json` }), {
    maxAgeMs: () => 600_000,
    now: () => clock.t,
    onJwksError: (e) => errors.push(e),
    remoteJwks: { cooldownMs: COOLDOWN, maxAgeMs: MAX_AGE, timeoutMs },
  });
  return { v, clock, errors };
}

describe('remote JWKS', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(serveJson(jwks(keyA)));
  });
  after(() => server.close());

  it('rotation, cooldown, outage and removal, in the order an operator would meet them', async (t) => {
    server.handler = serveJson(jwks(keyA));
    server.requests = 0;
    const { v, clock, errors } = await setup(server);
    t.after(() => v.close());

    await t.test('first use waits for the initial fetch', async () => {
      const cred = await v.verify(await sign(keyA, claims(clock.t)));
      assert.equal(cred.kid, keyA.kid);
      assert.equal(server.requests, 1);
      assert.deepEqual(v.keyIds(), [keyA.kid]);
    });

    await t.test('a rotated-in key is picked up by an unknown-kid refetch', async () => {
      server.handler = serveJson(jwks(keyA, keyB));
      clock.t += COOLDOWN;
      const cred = await v.verify(await sign(keyB, claims(clock.t)));
      assert.equal(cred.kid, keyB.kid);
      assert.equal(server.requests, 2);
    });

    await t.test('unknown kids inside the cooldown do not refetch', async () => {
      for (let i = 0; i < 5; i++) {
        await assert.rejects(v.verify(await sign(keyD, claims(clock.t))), isInvalid);
      }
      assert.equal(server.requests, 2);
      clock.t += COOLDOWN - 1;
      await assert.rejects(v.verify(await sign(keyD, claims(clock.t))), isInvalid);
      assert.equal(server.requests, 2);
      clock.t += 1;
      await assert.rejects(v.verify(await sign(keyD, claims(clock.t))), isInvalid);
      assert.equal(server.requests, 3);
    });

    await t.test('during an outage known kids keep verifying and unknown kids fail closed', async () => {
      server.handler = (_req, res) => {
        res.writeHead(503);
        res.end('down');
      };
      clock.t += MAX_AGE; // the set is stale: a background refresh is attempted and fails
      const cred = await v.verify(await sign(keyA, claims(clock.t)));
      assert.equal(cred.kid, keyA.kid);
      clock.t += COOLDOWN;
      // keyC was never published; the refetch it triggers fails.
      const err = await v.verify(await sign(keyC, claims(clock.t))).catch((e: unknown) => e);
      assert.ok(isInvalid(err));
      assert.ok(server.requests >= 4);
      assert.ok(errors.some((e) => /HTTP 503/.test(e.message)), errors.map((e) => e.message).join('; '));
      assert.deepEqual(v.keyIds().sort(), [keyA.kid, keyB.kid].sort());
      // A fresh token under a known key still verifies.
      await v.verify(await sign(keyB, claims(clock.t)));
    });

    await t.test('a garbage response during recovery does not replace the last good set', async () => {
      server.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('<html>maintenance</html>');
      };
      clock.t += COOLDOWN;
      await assert.rejects(v.verify(await sign(keyC, claims(clock.t))), isInvalid);
      assert.ok(errors.some((e) => /not valid JSON/.test(e.message)));
      await v.verify(await sign(keyA, claims(clock.t)));
    });

    await t.test('a key removed upstream drops its cached credentials', async () => {
      server.handler = serveJson(jwks(keyA, keyB));
      clock.t += COOLDOWN;
      // An unknown kid makes the (stale) source refetch and wait for it: the upstream set is loaded again.
      await assert.rejects(v.verify(await sign(keyD, claims(clock.t))), isInvalid);
      const tokenA = await sign(keyA, claims(clock.t));
      await v.verify(tokenA); // cached
      server.handler = serveJson(jwks(keyB, keyC));
      clock.t += COOLDOWN;
      await v.verify(await sign(keyC, claims(clock.t))); // unknown kid: refetch, keyA gone
      assert.deepEqual(v.keyIds().sort(), [keyB.kid, keyC.kid].sort());
      await assert.rejects(v.verify(tokenA), isInvalid);
    });
  });

  it('shares one in-flight fetch and exposes its status', async () => {
    server.handler = serveJson(jwks(keyA, keyB));
    server.requests = 0;
    const clock = { t: T0 };
    const src = new RemoteJwksSource(`${server.url}/jwks.json`, { prefetch: false, now: () => clock.t });
    assert.equal(src.lastFetchOk, undefined);
    await Promise.all(Array.from({ length: 10 }, () => src.refresh()));
    assert.equal(server.requests, 1);
    assert.equal(src.fetchCount, 1);
    assert.equal(src.lastFetchOk, true);
    assert.equal(src.lastFetchAt, T0);
    assert.equal(src.lastError, undefined);
    assert.deepEqual(src.keyIds().sort(), [keyA.kid, keyB.kid].sort());
    src.close();
  });

  it('refuses redirects, oversized bodies and non-http URIs', async () => {
    const errors: Error[] = [];
    server.handler = (req, res) => {
      if (req.url === '/moved') {
        res.writeHead(302, { location: '/jwks.json' });
        res.end();
      } else {
        res.writeHead(200);
        res.end(JSON.stringify({ keys: [keyA.jwk], pad: 'x'.repeat(4096) }));
      }
    };
    const moved = new RemoteJwksSource(`${server.url}/moved`, { prefetch: false, onError: (e) => errors.push(e) });
    await moved.refresh();
    assert.equal(moved.lastFetchOk, false);
    assert.deepEqual(moved.keyIds(), []);
    moved.close();
    const big = new RemoteJwksSource(`${server.url}/big`, { prefetch: false, maxBytes: 1024 });
    await big.refresh();
    assert.equal(big.lastFetchOk, false);
    assert.match(big.lastError?.message ?? '', /larger than 1024/);
    big.close();
    assert.throws(() => new RemoteJwksSource('file:///etc/passwd'), TypeError);
    assert.throws(() => new RemoteJwksSource('not a url'), TypeError);
    assert.equal(errors.length, 1);
  });

  it('a verifier whose JWKS server never answered fails closed', async () => {
    const dead = await startServer((_req, res) => {
      res.writeHead(500);
      res.end();
    });
    const { v } = await setup(dead);
    await assert.rejects(v.verify(await sign(keyA, claims(T0))), (e: unknown) => isInvalid(e) && /not available/.test((e as Error).message));
    assert.deepEqual(v.keyIds(), []);
    v.close();
    await dead.close();
  });
});

describe('remote JWKS: slow server', () => {
  it('times out, reports why, and fails closed', async () => {
    // Accepts the request and never answers.
    const slow = await startServer(() => {});
    try {
      const src = new RemoteJwksSource(`${slow.url}/jwks.json`, { prefetch: false, timeoutMs: 150 });
      await src.refresh();
      assert.equal(src.lastFetchOk, false);
      assert.match(src.lastError?.message ?? '', /timed out after 150 ms/);
      src.close();

      const { v } = await setup(slow, 150);
      await assert.rejects(v.verify(await sign(keyA, claims(T0))), (e: unknown) => isInvalid(e) && /timed out/.test((e as Error).message));
      v.close();
    } finally {
      await slow.close();
    }
  });
});
