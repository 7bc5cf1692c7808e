import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parsePolicy } from '../../src/config/load.js';
import { parseRevocationText } from '../../src/policy/guards/revocation-file.js';
import { REASON_CODES } from '../../src/policy/reasons.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function yamlBlocks(md: string): string[] {
  return [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe('docs/hardening.md and SECURITY.md agree with the code', () => {
  it('the complete example policy validates without errors or warnings, and its revocation file parses', async () => {
    const md = await readFile(path.join(ROOT, 'docs/hardening.md'), 'utf8');
    const [policy, revoked] = yamlBlocks(md);
    const r = parsePolicy(policy!, path.join(ROOT, 'docs/example.yaml'));
    assert.deepEqual(r.problems.map((p) => p.message), []);
    assert.ok(r.policy);
    assert.equal(r.policy.zones?.length, 3);
    assert.equal(r.policy.domainsByName.get('agent_memory')?.denySharedIdentity, true);
    const lists = parseRevocationText(revoked!, 'revoked.yaml');
    assert.ok(lists.agents.has('agent-compromised-3'));
  });

  it('every reason code SECURITY.md names exists', async () => {
    const md = await readFile(path.join(ROOT, 'SECURITY.md'), 'utf8');
    const named = [...md.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!).filter((c) => /_/.test(c) && !c.includes('mesh_pep'));
    const codes = new Set<string>(REASON_CODES);
    const reasonish = named.filter((n) => /(denied|credential|revoked|mismatch|unavailable|overloaded|too_large|not_allowed|no_policy|_failed|_error|_blocked|_rejected)$/.test(n));
    assert.ok(reasonish.length >= 5);
    for (const n of reasonish) assert.ok(codes.has(n), `SECURITY.md names unknown reason ${n}`);
  });
});
