import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CheckClient, denyReason, envoyCheckRequest, startTestServer } from '../support/envoy-check.js';
import { createMeshFixture, type MeshFixture } from '../support/mesh-fixture.js';

let fx: MeshFixture;
let server: Awaited<ReturnType<typeof startTestServer>>;
let client: CheckClient;

before(async () => {
  fx = await createMeshFixture();
  server = await startTestServer(fx.policyFile, { watchPolicy: true });
  client = new CheckClient(server.address);
});
after(async () => {
  client.close();
  await server.close();
  await fx.cleanup();
});

async function until(pred: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await pred()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('policy hot reload', () => {
  it('a good edit (atomic rename, as editors and ConfigMaps do) changes decisions', async () => {
    const token = await fx.token({ agent: 'x', role: 'EXECUTOR' });
    assert.equal(denyReason(await client.check(envoyCheckRequest({ domain: 'agent_memory', token }))), 'role_not_allowed');
    const text = await readFile(fx.policyFile, 'utf8');
    await writeFile(`${fx.policyFile}.tmp`, text.replace('allowed_roles: [RETRIEVER, ORCHESTRATOR]', 'allowed_roles: [RETRIEVER, ORCHESTRATOR, EXECUTOR]'));
    await rename(`${fx.policyFile}.tmp`, fx.policyFile);
    await until(async () => (await client.check(envoyCheckRequest({ domain: 'agent_memory', token }))).status.code === 0, 'reload');
    assert.notEqual(server.runtime.policy().hash, fx.policy.hash);
  });

  it('a bad edit keeps the last good policy serving and records why', async () => {
    const good = server.runtime.policy().hash;
    await writeFile(fx.policyFile, 'security_mesh:\n  domains:\n    - name: a\n      tier: WRONG\n      allowed_roles: [X]\n');
    const r = await server.runtime.reload();
    assert.equal(r.ok, false);
    assert.match(r.errors[0]!, /security_mesh\.yaml:4:13: .*"WRONG" is not one of/);
    assert.equal(server.runtime.policy().hash, good);
    const token = await fx.token({ agent: 'x', role: 'RETRIEVER' });
    assert.equal((await client.check(envoyCheckRequest({ domain: 'agent_memory', token }))).status.code, 0);
    await writeFile(fx.policyFile, 'this is: [not yaml');
    assert.equal((await server.runtime.reload()).ok, false);
    assert.equal(server.runtime.policy().hash, good);
    const metrics = server.runtime.metrics.policyReloads.get({ result: 'error' });
    assert.ok(metrics >= 2);
  });
});
