import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { CompiledPolicy, DomainPolicy } from '../../src/config/types.js';
import { digest, processBody } from '../../src/protect/pipeline.js';
import type { TierModule } from '../../src/protect/registry.js';
import type { PayloadContext } from '../../src/protect/tier-handler.js';
import { notesDomain, type NotesDomain } from '../support/extproc-server.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

describe('payload digest (taken when read) and the JSON UTF-8 check', () => {
  let fx: NotesDomain;
  let policy: CompiledPolicy;
  let domain: DomainPolicy;
  let mod: TierModule;
  before(async () => {
    fx = await notesDomain('mesh-pep-digest-');
    ({ policy, domain, mod } = fx);
    await mod.ensureDevKeys(policy, domain);
  });
  after(() => fx.cleanup());
  const ctx = (direction: 'request' | 'response', contentType: string | undefined): PayloadContext => ({ policy, domain, direction, contentType });

  it('digest() is the SHA-256 and size of the bytes, the same on every read, and shown by JSON', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), (bytes) => {
        const d = digest(bytes);
        assert.equal(d.bytes, bytes.length);
        assert.equal(d.sha256, sha256(bytes));
        assert.equal(d.sha256, sha256(bytes));
        assert.deepEqual(JSON.parse(JSON.stringify(d)), { bytes: bytes.length, sha256: sha256(bytes) });
      }),
    );
  });

  it('verdicts carry the plaintext digest for both directions and for refusals', async () => {
    const body = Buffer.from(JSON.stringify({ note: 'observation 7', items: [1, 2, 3] }));
    const sealed = await processBody({ ctx: ctx('request', 'application/json'), body, handler: mod.handler });
    assert.equal(sealed.kind, 'replace');
    assert.equal(sealed.plaintext?.sha256, sha256(body));
    assert.equal(sealed.plaintext?.bytes, body.length);
    assert.ok(sealed.kind === 'replace');
    const opened = await processBody({ ctx: ctx('response', 'application/jose'), body: sealed.body, handler: mod.handler });
    assert.equal(opened.kind, 'replace');
    assert.equal(opened.plaintext?.sha256, sha256(body));
    const empty = await processBody({ ctx: ctx('request', 'application/json'), body: Buffer.alloc(0), handler: mod.handler });
    assert.deepEqual(JSON.parse(JSON.stringify(empty.plaintext)), { bytes: 0, sha256: sha256(Buffer.alloc(0)) });
  });

  it('a body declared JSON is refused exactly when a fatal UTF-8 decoder would refuse it', async () => {
    const cases = [
      Buffer.from('{"a":"plain ascii"}'),
      Buffer.from('{"a":"é ü 漢字 😀"}'),
      Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), // BOM + {}
      Buffer.from([0x7b, 0xff, 0x7d]), // invalid byte
      Buffer.from([0x7b, 0xc0, 0x80, 0x7d]), // overlong NUL
      Buffer.from([0x7b, 0xed, 0xa0, 0x80, 0x7d]), // UTF-16 surrogate
      Buffer.from([0x7b, 0xf4, 0x90, 0x80, 0x80, 0x7d]), // beyond U+10FFFF
      Buffer.from([0x7b, 0xe2, 0x82]), // truncated sequence
    ];
    const random = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 64 }), 200).map((b) => Buffer.from(b));
    for (const body of [...cases, ...random]) {
      let valid = true;
      try {
        strictUtf8.decode(body);
      } catch {
        valid = false;
      }
      const v = await processBody({ ctx: ctx('request', 'application/json; charset=utf-8'), body, handler: mod.handler });
      assert.equal(v.kind, valid ? 'replace' : 'deny', `bytes ${body.toString('hex')}`);
      if (!valid) assert.equal(v.kind === 'deny' && v.reason, 'payload_rejected');
      // Not declared JSON: never checked.
      const raw = await processBody({ ctx: ctx('request', 'application/octet-stream'), body, handler: mod.handler });
      assert.equal(raw.kind, 'replace');
    }
  });
});
