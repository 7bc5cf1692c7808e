import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileAuditSink, MeshSecurityController, SecurityError, verifyAuditChain } from '../../src/index.js';
import { loadKeyring } from '../../src/protect/keyring.js';
import { openForDomain } from '../../src/protect/jwe.js';
import { readPseudonymKey } from '../../src/server/pseudonym-key.js';
import { createMeshFixture, type MeshFixture } from '../support/mesh-fixture.js';

let fx: MeshFixture;
let sink: FileAuditSink;
let controller: MeshSecurityController;

before(async () => {
  fx = await createMeshFixture();
  sink = await FileAuditSink.open({ file: path.join(fx.dir, 'lib-audit.jsonl'), maxFileBytes: 1 << 20, groupCommitMs: 1 });
  controller = new MeshSecurityController(sink, {
    identity: { issuer: 'https://issuer.test', audiences: ['agent-mesh'], jwksFile: fx.policy.identity.jwksFile! },
    keysDir: fx.policy.keys.dir,
    pseudonymKey: await readPseudonymKey(fx.policy.keys.pseudonymKeyFile),
  });
  controller.registerPolicy('agent_memory', { tier: 'RETRIEVAL', allowedRoles: ['RETRIEVER', 'ORCHESTRATOR'], metadataMasking: true, maxTokenAgeMs: 900_000, auditLevel: 'FULL_MESH' });
});
after(async () => {
  controller.close();
  await sink.close();
  await fx.cleanup();
});

describe('MeshSecurityController (the blueprint API on the same core)', () => {
  it('authorises, masks metadata, protects the payload by tier and audits', async () => {
    const token = await fx.token({ agent: 'retriever-7', role: 'RETRIEVER' });
    const res = await controller.validateExchange('agent_memory', {
      credential: token,
      target: 'memory.agents.svc/v1/memory/notes',
      payload: '{"note":"the quarterly numbers"}',
      contentType: 'application/json',
      metadata: { sender_ip: '10.0.0.7', routing_path: 'a>b>c', internal_id: 'n-42', timestamp: '1700000000', 'x-forwarded-for': '1.2.3.4', trace: 'keep-me' },
    });
    assert.equal(res.status, 'AUTHORIZED');
    assert.equal(res.tier, 'RETRIEVAL');
    assert.match(res.agent, /^ap_/);
    assert.deepEqual(res.metadata, { trace: 'keep-me' });
    assert.equal(res.contentType, 'application/jose');
    const jwe = new TextDecoder().decode(res.payload);
    const opened = await openForDomain(jwe, await loadKeyring(fx.policy.domains[0]!.keyringFile), 'agent_memory');
    assert.equal(new TextDecoder().decode(opened.plaintext), '{"note":"the quarterly numbers"}');
    const audit = await readFile(path.join(fx.dir, 'lib-audit.jsonl'), 'utf8');
    assert.ok(audit.includes(res.decisionId));
    assert.ok(!audit.includes('quarterly') && !audit.includes(token));
    const chain = await verifyAuditChain(path.join(fx.dir, 'lib-audit.jsonl'));
    assert.equal(chain.ok, true);
    assert.equal(chain.ok && chain.records, 2);
  });

  it('denies with typed errors carrying reason codes', async () => {
    await assert.rejects(
      controller.validateExchange('nope', { credential: 'x', target: 'h/p', payload: '', metadata: {} }),
      (e: unknown) => e instanceof SecurityError && e.code === 'no_policy',
    );
    await assert.rejects(
      controller.validateExchange('agent_memory', { credential: 'garbage', target: 'h/p', payload: '', metadata: {} }),
      (e: unknown) => e instanceof SecurityError && e.code === 'invalid_credential',
    );
    const executor = await fx.token({ agent: 'x', role: 'EXECUTOR' });
    await assert.rejects(
      controller.validateExchange('agent_memory', { credential: executor, target: 'h/p', payload: 'secret', metadata: {} }),
      (e: unknown) => e instanceof SecurityError && e.code === 'role_not_allowed',
    );
    assert.throws(() => controller.registerPolicy('x', { tier: 'RETRIEVAL', allowedRoles: [], metadataMasking: false, maxTokenAgeMs: 60_000, auditLevel: 'FULL_MESH' }), TypeError);
  });
});
