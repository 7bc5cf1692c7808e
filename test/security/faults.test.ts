import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { envoyCheckRequest, setHeaders, startTestServer, type CheckResponseView } from '../support/envoy-check.js';
import { createMeshFixture } from '../support/mesh-fixture.js';
import { exited, freePort, recordedDecisionIds, spawnServe, startLoad } from './load.js';


describe('faults under load', () => {
  it('kill -9 under load, restart, SIGTERM under load: chain intact, every allowed decision recorded', async () => {
    const fx = await createMeshFixture();
    try {
      const tokens = await Promise.all(['a', 'b', 'c'].map((a) => fx.token({ agent: `kill-${a}`, role: 'RETRIEVER' })));
      const [grpcPort, adminPort] = [await freePort(), await freePort()];
      let child = await spawnServe(fx.policyFile, grpcPort, adminPort);
      const load = startLoad(`127.0.0.1:${grpcPort}`, { concurrency: 8, tokens });
      await sleep(600);
      child.kill('SIGKILL');
      await exited(child);
      await sleep(100);
      child = await spawnServe(fx.policyFile, grpcPort, adminPort);
      await sleep(600);
      child.kill('SIGTERM');
      assert.equal(await exited(child), 0, 'SIGTERM drain must exit 0');
      const stats = await load.stop();
      assert.ok(stats.allowed > 20, JSON.stringify({ ...stats, allowedIds: stats.allowedIds.size }));
      assert.equal(stats.invalid, 0);
      const chain = await verifyAuditChain(fx.policy.audit.file);
      assert.ok(chain.ok, JSON.stringify(chain));
      const ids = await recordedDecisionIds(fx.policy.audit.file);
      const lost = [...stats.allowedIds].filter((id) => !ids.has(id));
      assert.deepEqual(lost, [], 'an allow was answered without its durable audit record');
    } finally {
      await fx.cleanup();
    }
  });

  it('policy replaced by garbage or by another valid policy mid-load: no half-applied policy, no error', async () => {
    const fx = await createMeshFixture();
    const s = await startTestServer(fx.policyFile, { watchPolicy: true });
    try {
      const good = await readFile(fx.policyFile, 'utf8');
      // Policy B: agent_memory without masking. Every allow must be wholly A (pseudonym and topology
      // headers removed) or wholly B (agent id, topology kept): never a mix of the two.
      const unmasked = good.replace(/(name: agent_memory[\s\S]*?)metadata_masking: true/, '$1metadata_masking: false');
      assert.notEqual(unmasked, good);
      const tokens = [await fx.token({ agent: 'reload-a', role: 'RETRIEVER' })];
      const inspect = (res: CheckResponseView) => {
        if (res.status.code !== 0) throw new Error(`unexpected deny ${JSON.stringify(res.denied_response?.headers)}`);
        const set = setHeaders(res);
        const removesTopology = res.ok_response!.headers_to_remove.includes('x-forwarded-for');
        if (set.has('x-agent-pseudonym') !== removesTopology || set.has('x-agent-pseudonym') === set.has('x-agent-id')) throw new Error('mixed policy');
      };
      const load = startLoad(s.address, { concurrency: 6, tokens, inspect, request: () => envoyCheckRequest({ token: tokens[0] }) });
      for (const text of ['security_mesh: [unclosed', unmasked, '\u0000\u0001garbage', good, unmasked, 'domains: 42', good]) {
        await writeFile(fx.policyFile, text);
        await s.runtime.reload();
        await sleep(60);
      }
      const stats = await load.stop();
      assert.equal(stats.invalid, 0, JSON.stringify(stats.denied));
      assert.deepEqual(stats.errors, {});
      assert.ok(stats.allowed > 50);
      assert.equal(s.runtime.policy().hash.length, 64);
    } finally {
      await s.close();
      await fx.cleanup();
    }
  });
});
