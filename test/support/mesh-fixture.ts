import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadPolicyFile } from '../../src/config/load.js';
import type { CompiledPolicy } from '../../src/config/types.js';
import { mintPolicyToken } from '../../src/identity/dev-issuer.js';
import { ensureDevKeys } from '../../src/server/dev-keys.js';

/**
 * A policy and its keys in a fresh temp folder, with a token minter using the development issuer.
 * Every key is minted at run time; nothing is committed.
 */
export const TRUSTED = 'sha256:' + 'a1'.repeat(32);

export const DEFAULT_DOMAINS = `
    - name: agent_memory
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER, ORCHESTRATOR]
      metadata_masking: true
      audit_level: FULL_MESH
      match: {hosts: ["memory.agents.svc"], path_prefixes: ["/v1/memory"]}
      mask_headers: [x-tenant-route]
    - name: coordination
      tier: RETRIEVAL
      allowed_roles: [ORCHESTRATOR, EXECUTOR]
      metadata_masking: false
      audit_level: OUTPUT_ONLY
      match: {hosts: ["*.coord.svc"]}
    - name: sealed_memory
      tier: RETRIEVAL
      allowed_roles: [ANALYST]
      metadata_masking: true
      attestation_required: true
      max_token_age_ms: 60000
`;

export function policyYaml(domains = DEFAULT_DOMAINS, extra = ''): string {
  return `security_mesh:
  global:
    tls_min_version: "1.3"
    credential_rotation_interval_ms: 600000
    audit_scope: FULL_MESH
  identity:
    issuer: https://issuer.test
    audiences: [agent-mesh]
    jwks_file: keys/issuer.jwks.json
    clock_skew_ms: 5000
  attestation:
    trusted_measurements: ["${TRUSTED}"]
  keys:
    dir: keys
  audit:
    file: audit/audit.jsonl
${extra}  domains:${domains}`;
}

export interface MeshFixture {
  dir: string;
  policyFile: string;
  policy: CompiledPolicy;
  token(opts: { agent: string; role: string; ttlMs?: number; attestation?: string; spiffe?: string; iatOffsetMs?: number }): Promise<string>;
  cleanup(): Promise<void>;
}

export async function createMeshFixture(yaml = policyYaml()): Promise<MeshFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-test-'));
  const policyFile = path.join(dir, 'security_mesh.yaml');
  await writeFile(policyFile, yaml);
  const { policy } = await loadPolicyFile(policyFile);
  await ensureDevKeys(policy);
  return {
    dir,
    policyFile,
    policy,
    token: ({ agent, role, ttlMs = 600_000, attestation, spiffe, iatOffsetMs = 0 }) =>
      mintPolicyToken(policy, { agentId: agent, role, ttlMs, attestation, spiffeId: spiffe, now: Date.now() + iatOffsetMs }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
