import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import type { CompiledPolicy, DomainPolicy } from '../../src/config/types.js';
import { processBody, type PayloadScan } from '../../src/protect/pipeline.js';
import type { TierModule } from '../../src/protect/registry.js';
import type { PayloadContext } from '../../src/protect/tier-handler.js';
import { notesDomain, type NotesDomain } from '../support/extproc-server.js';

describe('payload pipeline (no Envoy types) with the real RETRIEVAL tier', () => {
  let fx: NotesDomain;
  let policy: CompiledPolicy;
  let domain: DomainPolicy;
  let mod: TierModule;
  before(async () => {
    fx = await notesDomain('mesh-pep-pipeline-');
    ({ policy, domain, mod } = fx);
    assert.deepEqual(await mod.ensureDevKeys(policy, domain), [domain.keyringFile]);
    assert.deepEqual(await mod.ensureDevKeys(policy, domain), [], 'never overwrites');
  });
  after(() => fx.cleanup());

  const ctx = (direction: 'request' | 'response', contentType: string | undefined): PayloadContext => ({ policy, domain, direction, contentType });

  it('protects a request body and opens it again on the response path', async () => {
    const body = Buffer.from('{"a":1}');
    const v = await processBody({ ctx: ctx('request', 'application/json'), body, handler: mod.handler });
    assert.equal(v.kind, 'replace');
    if (v.kind !== 'replace') return;
    assert.equal(v.contentType, 'application/jose');
    assert.deepEqual(v.headers, { 'x-mesh-protected': 'RETRIEVAL' });
    assert.equal(decodeProtectedHeader(Buffer.from(v.body).toString()).kid, (await mod.keyIds(policy, domain))[0]);
    const back = await processBody({ ctx: ctx('response', 'application/jose'), body: v.body, handler: mod.handler });
    assert.equal(back.kind, 'replace');
    if (back.kind !== 'replace') return;
    assert.deepEqual(Buffer.from(back.body), body);
    assert.equal(back.contentType, 'application/json');
    assert.equal(back.plaintext.sha256, v.plaintext.sha256);
    assert.deepEqual(Buffer.from(await mod.openForOperator(v.body, { policy, domain, keyFiles: [] })), body);
  });

  it('passes empty bodies and non-JWE responses; refuses non-UTF-8 JSON', async () => {
    assert.equal((await processBody({ ctx: ctx('request', 'text/plain'), body: Buffer.alloc(0), handler: mod.handler })).kind, 'pass');
    assert.equal((await processBody({ ctx: ctx('response', 'text/plain'), body: Buffer.from('plain'), handler: mod.handler })).kind, 'pass');
    const bad = await processBody({ ctx: ctx('request', 'application/json'), body: Buffer.from([0x7b, 0xff, 0x7d]), handler: mod.handler });
    assert.deepEqual(bad.kind === 'deny' && bad.reason, 'payload_rejected');
  });

  it('scans plaintext before protection and after unprotection, never ciphertext', async () => {
    const seen: string[] = [];
    // A minimal scanner implementing the hook's contract: blocks bodies naming the canary.
    const scan: PayloadScan = async (plaintext) => {
      const text = Buffer.from(plaintext).toString();
      seen.push(text);
      if (text.includes('CANARY-1')) return { action: 'block', body: plaintext, findings: { CANARY: 1 } };
      return { action: 'clean', body: plaintext, findings: {} as Record<string, number> };
    };
    const blocked = await processBody({ ctx: ctx('request', 'text/plain'), body: Buffer.from('leak CANARY-1'), handler: mod.handler, scan });
    assert.deepEqual(blocked.kind === 'deny' && [blocked.reason, blocked.findings], ['dlp_blocked', { CANARY: 1 }]);
    const sealed = await processBody({ ctx: ctx('request', 'text/plain'), body: Buffer.from('fine'), handler: mod.handler });
    assert.equal(sealed.kind, 'replace');
    if (sealed.kind !== 'replace') return;
    const opened = await processBody({ ctx: ctx('response', 'application/jose'), body: sealed.body, handler: mod.handler, scan });
    assert.equal(opened.kind, 'replace');
    assert.deepEqual(seen, ['leak CANARY-1', 'fine']);
  });
});
