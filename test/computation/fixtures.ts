import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { parsePolicy } from '../../src/config/load.js';
import type { CompiledPolicy, DomainPolicy } from '../../src/config/types.js';
import type { PayloadContext } from '../../src/protect/tier-handler.js';

export const TRUSTED = `sha256:${'a1'.repeat(32)}`;
export const UNTRUSTED = `sha256:${'ff'.repeat(32)}`;

/** A temp folder holding a policy file; `cleanup` removes it. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-pep-computation-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Compiles policy YAML through the real loader (paths resolve against `dir`). */
export function compile(dir: string, yaml: string): CompiledPolicy {
  const { policy, problems } = parsePolicy(yaml, join(dir, 'policy.yaml'));
  if (!policy) throw new Error(`policy did not compile: ${problems.map((p) => p.message).join('; ')}`);
  return policy;
}

export function teePolicy(dir: string, trusted: readonly string[] = [TRUSTED], recipientsFile?: string): CompiledPolicy {
  return compile(
    dir,
    `security_mesh:
  attestation:
    trusted_measurements: ${JSON.stringify(trusted)}
  keys:
    dir: keys
  domains:
    - name: pii_inference
      tier: COMPUTATION
      allowed_roles: [EXECUTOR]
      attestation_required: true
${recipientsFile ? `      computation: {mode: tee, recipients_file: ${JSON.stringify(recipientsFile)}}\n` : ''}`,
  );
}

export function mpcPolicy(dir: string, parties: readonly string[], fields: readonly string[] = []): CompiledPolicy {
  return compile(
    dir,
    `security_mesh:
  keys:
    dir: keys
  domains:
    - name: cross_cloud
      tier: COMPUTATION
      allowed_roles: [ANALYST]
      computation:
        mode: mpc
        parties:
${parties.map((p) => `          - {name: ${p}, jwks_file: parties/${p}.jwks.json}`).join('\n')}
        fields: ${JSON.stringify(fields)}
`,
  );
}

export function domainOf(policy: CompiledPolicy, name: string): DomainPolicy {
  const d = policy.domainsByName.get(name);
  if (!d) throw new Error(`no domain ${name}`);
  return d;
}

export function ctx(policy: CompiledPolicy, domain: DomainPolicy, contentType: string | undefined, direction: 'request' | 'response' = 'request'): PayloadContext {
  return { policy, domain, contentType, direction };
}

export interface KeyPair {
  privateJwk: JWK;
  publicJwk: JWK;
}

/** A recipient key pair minted with jose directly (not with the code under test). */
export async function keyPair(crv: 'P-256' | 'X25519' = 'P-256'): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { crv, extractable: true });
  const kid = `test-${randomBytes(6).toString('hex')}`;
  return { privateJwk: { ...(await exportJWK(privateKey)), kid }, publicJwk: { ...(await exportJWK(publicKey)), kid } };
}

export async function writeJson(file: string, doc: unknown): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  const { dirname } = await import('node:path');
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(doc));
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
