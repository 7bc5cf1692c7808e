import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { tierModule } from '../../src/protect/registry.js';
import { fheFixture, enc, type FheFixture } from './setup.js';

/** Runs in its own process (node --test isolates files), so nothing else loaded node-seal before. */
const nodeSealInCache = (): boolean => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('node-seal'));

describe('node-seal loads lazily and once', () => {
  let fx: FheFixture;
  before(async () => {
    fx = await fheFixture();
  });
  after(() => fx.cleanup());

  it('a RETRIEVAL domain and importing the FHE tier do not load the WASM; first FHE use does, once', async () => {
    const retrieval = await tierModule('RETRIEVAL');
    await retrieval.ensureDevKeys(fx.policy, fx.domain('memory'));
    const sealed = await retrieval.handler.protect(enc({ note: 'hello' }), fx.ctx('memory'));
    assert.equal(sealed.contentType, 'application/jose');
    assert.equal(nodeSealInCache(), false, 'RETRIEVAL path must not load node-seal');

    const fheMod = await tierModule('FHE');
    const fhe = await import('../../src/protect/fhe/index.js');
    assert.equal(fheMod, fhe.tierModule);
    assert.equal(fhe.isSealLoaded(), false, 'importing the FHE tier must not load the WASM');
    assert.equal(nodeSealInCache(), false);
    // Key ids are read from files without the WASM.
    assert.deepEqual(await fheMod.keyIds(fx.policy, fx.domain('fin')), []);
    assert.equal(fhe.isSealLoaded(), false);

    await fheMod.ensureDevKeys(fx.policy, fx.domain('fin'));
    assert.equal(fhe.isSealLoaded(), true);
    assert.equal(nodeSealInCache(), true);
    assert.equal(fhe.sealLoadCount(), 1);
    assert.ok((fhe.sealLoadMillis() ?? -1) >= 0);

    const [ckksId] = await fheMod.keyIds(fx.policy, fx.domain('fin'));
    assert.match(ckksId!, /^ckks-[0-9a-f]{16}$/);
    await fheMod.handler.protect(enc({ x: [1, 2, 3] }), fx.ctx('fin'));
    await fheMod.handler.protect(enc({ y: 4 }), fx.ctx('fin'));
    assert.equal(fhe.sealLoadCount(), 1, 'the WASM is instantiated once per process');
  });
});
