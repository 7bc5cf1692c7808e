import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { denyReason, envoyCheckRequest, useCheckServer } from '../support/envoy-check.js';

const h = useCheckServer({ watchPolicy: true });

async function until(pred: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await pred()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('policy hot reload', () => {
  it('a good edit (atomic rename, as editors and ConfigMaps do) changes decisions', async () => {
    const token = await h.fx.token({ agent: 'x', role: 'EXECUTOR' });
    assert.equal(denyReason(await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token }))), 'role_not_allowed');
    const text = await readFile(h.fx.policyFile, 'utf8');
    await writeFile(`${h.fx.policyFile}.tmp`, text.replace('allowed_roles: [RETRIEVER, ORCHESTRATOR]', 'allowed_roles: [RETRIEVER, ORCHESTRATOR, EXECUTOR]'));
    await rename(`${h.fx.policyFile}.tmp`, h.fx.policyFile);
    await until(async () => (await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token }))).status.code === 0, 'reload');
    assert.notEqual(h.server.runtime.policy().hash, h.fx.policy.hash);
  });

  it('a bad edit keeps the last good policy serving and records why', async () => {
    const good = h.server.runtime.policy().hash;
    await writeFile(h.fx.policyFile, 'security_mesh:\n  domains:\n    - name: a\n      tier: WRONG\n      allowed_roles: [X]\n');
    const r = await h.server.runtime.reload();
    assert.equal(r.ok, false);
    assert.match(r.errors[0]!, /security_mesh\.yaml:4:13: .*"WRONG" is not one of/);
    assert.equal(h.server.runtime.policy().hash, good);
    const token = await h.fx.token({ agent: 'x', role: 'RETRIEVER' });
    assert.equal((await h.client.check(envoyCheckRequest({ domain: 'agent_memory', token }))).status.code, 0);
    await writeFile(h.fx.policyFile, 'this is: [not yaml');
    assert.equal((await h.server.runtime.reload()).ok, false);
    assert.equal(h.server.runtime.policy().hash, good);
    const metrics = h.server.runtime.metrics.policyReloads.get({ result: 'error' });
    assert.ok(metrics >= 2);
  });
});
