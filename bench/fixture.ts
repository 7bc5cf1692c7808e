import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { importJWK, SignJWT, type JWK } from 'jose';
import { loadPolicyFile } from '../src/config/load.js';
import type { CompiledPolicy } from '../src/config/types.js';
import { ensureDevKeys } from '../src/server/dev-keys.js';

/**
 * The benchmark policy, in a temp folder with keys minted at run time. Domains, one per scenario:
 * - `bench_plain`:  RETRIEVAL, no masking, OUTPUT_ONLY audit (an allow writes no record) — "audit off"
 * - `bench_masked`: RETRIEVAL, metadata masking (pseudonym, topology headers removed), OUTPUT_ONLY
 * - `bench_full`:   RETRIEVAL, no masking, FULL_MESH audit (every allow waits for its fdatasync)
 * - `bench_memory`: RETRIEVAL, masking and FULL_MESH audit, like the bundled agent_memory: the Go-anchor rows
 */
export const BENCH_POLICY = `security_mesh:
  global:
    tls_min_version: "1.3"
    credential_rotation_interval_ms: 3600000
    audit_scope: OUTPUT_ONLY
  identity:
    issuer: https://issuer.bench
    audiences: [agent-mesh]
    jwks_file: keys/issuer.jwks.json
    clock_skew_ms: 5000
  keys:
    dir: keys
  audit:
    file: audit/audit.jsonl
  domains:
    - name: bench_plain
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER, ORCHESTRATOR]
      metadata_masking: false
      audit_level: OUTPUT_ONLY
    - name: bench_masked
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER, ORCHESTRATOR]
      metadata_masking: true
      audit_level: OUTPUT_ONLY
    - name: bench_full
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER, ORCHESTRATOR]
      metadata_masking: false
      audit_level: FULL_MESH
    - name: bench_memory
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER, ORCHESTRATOR]
      metadata_masking: true
      audit_level: FULL_MESH
`;

export interface BenchFixture {
  dir: string;
  policyFile: string;
  policy: CompiledPolicy;
  /** ES256 credentials from the development issuer; `n` distinct ones (distinct jti) when asked. */
  mint(opts: { agent: string; role: string; n?: number }): Promise<string[]>;
  cleanup(): Promise<void>;
}

export async function createBenchFixture(): Promise<BenchFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-bench-'));
  const policyFile = path.join(dir, 'security_mesh.yaml');
  await writeFile(policyFile, BENCH_POLICY);
  const { policy } = await loadPolicyFile(policyFile);
  await ensureDevKeys(policy);
  const jwk = JSON.parse(await readFile(policy.keys.issuerPrivateKeyFile, 'utf8')) as JWK;
  const key = await importJWK(jwk, 'ES256');
  return {
    dir,
    policyFile,
    policy,
    async mint({ agent, role, n = 1 }) {
      const iat = Math.floor(Date.now() / 1000);
      const out: string[] = [];
      for (let i = 0; i < n; i++) {
        out.push(
          await new SignJWT({ role, jti: `bench-${i}-${Math.random().toString(36).slice(2)}` })
            .setProtectedHeader({ alg: 'ES256', kid: jwk.kid ?? '', typ: 'JWT' })
            .setIssuer(policy.identity.issuer ?? '')
            .setAudience(policy.identity.audiences[0]!)
            .setSubject(agent)
            .setIssuedAt(iat)
            .setExpirationTime(iat + 3600)
            .sign(key),
        );
      }
      return out;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
