import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProbeSet, type ProbeSet } from '../../src/dlp/probe-set.js';
import { runLive } from '../../src/dlp/probe-live.js';
import { formatScore, scorableEntities, scoreProbes, targetsMet } from '../../src/dlp/probe-score.js';
import type { Runtime } from '../../src/server/runtime.js';
import { startServer } from '../../src/server/start.js';
import { createLogger } from '../../src/telemetry/logger.js';

const POLICY = `
security_mesh:
  identity:
    issuer: "https://issuer.test"
    audiences: ["agent-mesh"]
    jwks_file: keys/issuer.jwks.json
  keys:
    dir: keys
  audit:
    file: audit/audit.jsonl
  domains:
    - name: agent_memory
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER]
      metadata_masking: true
      audit_level: FULL_MESH
      dlp: {action: redact, canaries: ["MESHPEP-CANARY-[0-9a-f]{16}"]}
    - name: vault
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER]
      metadata_masking: false
      audit_level: FULL_MESH
      dlp: {action: block, entities: [US_SSN, CREDIT_CARD, PRIVATE_KEY, AWS_SECRET_KEY]}
`;

/**
 * The probe's live mode against the real server (startServer, as `mesh-pep serve` runs it) over gRPC
 * on 127.0.0.1: policy, dev keys minted into a temp dir, audit chain, Check and ext_proc with the
 * leak guard as its scan step.
 */
async function withServer(fn: (address: string, rt: Runtime) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-pep-probe-'));
  const configFile = join(dir, 'policy.yaml');
  await writeFile(configFile, POLICY);
  const server = await startServer({ configFile, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', initDevKeys: true, log: createLogger('silent') });
  try {
    await fn(`127.0.0.1:${server.grpcPort}`, server.runtime);
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Two channels per entity keep the run short; the offline tests cover all six. */
function smallSet(): ProbeSet {
  const set = buildProbeSet({ seed: 99 });
  return { ...set, probes: set.probes.filter((p) => p.channel === 'tool_call' || p.channel === 'log') };
}

test('live probe: redact domain over gRPC meets the targets, masks topology headers, audit holds no planted value', async () => {
  await withServer(async (address, rt) => {
    const policy = rt.policy();
    const domain = policy.domainsByName.get('agent_memory');
    assert.ok(domain?.dlp);
    const set = smallSet();
    const run = await runLive({ server: address, policy, domain, set, auditFile: policy.audit.file });
    assert.deepEqual(run.errors, {});
    const audit = await readFile(policy.audit.file, 'utf8');
    const score = scoreProbes(run.outcomes, scorableEntities(domain.dlp, set), { headers: run.headers, auditText: audit, set });
    assert.ok(targetsMet(score), formatScore(score));
    assert.equal(score.byEntity.CANARY?.recall, 1);
    assert.equal(score.headerMask?.rate, 1);
    assert.equal(score.audit?.leaked, 0);
  });
});

test('live probe: block domain answers dlp_blocked for its entities and passes look-alikes', async () => {
  await withServer(async (address, rt) => {
    const policy = rt.policy();
    const domain = policy.domainsByName.get('vault');
    assert.ok(domain?.dlp);
    const set = smallSet();
    const run = await runLive({ server: address, policy, domain, set });
    assert.deepEqual(run.errors, {});
    const score = scoreProbes(run.outcomes, scorableEntities(domain.dlp, set));
    assert.deepEqual(Object.keys(score.byEntity).sort(), ['AWS_SECRET_KEY', 'CREDIT_CARD', 'PRIVATE_KEY', 'US_SSN']);
    assert.ok(targetsMet(score), formatScore(score));
    assert.equal(run.headers, undefined, 'no header score for a domain without masking');
  });
});

test('live probe, response direction: what the callee answers is scanned after unprotection', async () => {
  await withServer(async (address, rt) => {
    const policy = rt.policy();
    const domain = policy.domainsByName.get('agent_memory');
    assert.ok(domain?.dlp);
    const set = smallSet();
    const run = await runLive({ server: address, policy, domain, set, auditFile: policy.audit.file, direction: 'response' });
    assert.deepEqual(run.errors, {});
    const audit = await readFile(policy.audit.file, 'utf8');
    const score = scoreProbes(run.outcomes, scorableEntities(domain.dlp, set), { auditText: audit, set });
    assert.ok(targetsMet(score), formatScore(score));
  });
});
