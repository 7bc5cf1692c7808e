import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { SidecarPeer } from '../../src/envoy/peer/sidecar.js';
import { useCheckServer } from '../support/envoy-check.js';

/**
 * OUTPUT_ONLY domains record the hops that leave the mesh (`hop: egress` on the route). ext_proc only
 * learns that from Check's dynamic metadata; without `hop` there, egress payloads went unaudited.
 */
const h = useCheckServer();

async function records(): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(h.fx.policy.audit.file, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('egress hops of OUTPUT_ONLY domains through Check and ext_proc', () => {
  it('the egress payload is audited; an internal hop of the same domain is not', async () => {
    const sidecar = new SidecarPeer(h.server.address);
    try {
      const token = await h.fx.token({ agent: 'orch-1', role: 'ORCHESTRATOR' });
      const send = (path: string, extensions?: Record<string, string>) =>
        sidecar.send(
          { method: 'POST', path, host: 'api.coord.svc', token, domain: 'coordination', body: Buffer.from('{"plan":"x"}'), headers: { 'content-type': 'application/json' }, ...(extensions ? { extensions } : {}) },
          () => ({ status: 204, headers: [] }),
        );
      const egress = await send('/v1/egress-out', { hop: 'egress' });
      assert.equal(egress.kind, 'allowed');
      assert.equal(egress.kind === 'allowed' && egress.metadata['hop'], 'egress', 'Check carries the hop to ext_proc');
      const internal = await send('/v1/internal');
      assert.equal(internal.kind, 'allowed');
      assert.equal(internal.kind === 'allowed' && internal.metadata['hop'], undefined);

      const all = await records();
      const body = all.filter((r) => r['event'] === 'extproc.request_body' && r['domain'] === 'coordination');
      assert.equal(body.length, 1, JSON.stringify(all.map((r) => [r['event'], r['domain'], r['target']])));
      assert.match(String(body[0]!['target']), /egress-out/);
      assert.equal(body[0]!['decision_id'], egress.kind === 'allowed' ? egress.metadata['decision_id'] : '');
      assert.match(String(body[0]!['payload_sha256']), /^[0-9a-f]{64}$/);
    } finally {
      sidecar.close();
    }
  });
});
