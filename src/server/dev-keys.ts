import type { CompiledPolicy } from '../config/types.js';
import { ensureDevIssuer } from '../identity/dev-issuer.js';
import { tierModule } from '../protect/registry.js';
import { ensurePseudonymKey } from './pseudonym-key.js';

/**
 * Creates every key file the policy names that is missing: the development issuer (when the policy
 * reads a local JWKS file), the pseudonym secret, and each domain's keys by its tier. Existing files
 * are never touched. Returns the paths written.
 */
export async function ensureDevKeys(policy: CompiledPolicy): Promise<string[]> {
  const written: string[] = [];
  if (policy.identity.jwksFile) {
    written.push(...(await ensureDevIssuer({ jwksFile: policy.identity.jwksFile, privateKeyFile: policy.keys.issuerPrivateKeyFile })));
  }
  written.push(...(await ensurePseudonymKey(policy.keys.pseudonymKeyFile)));
  for (const domain of policy.domains) {
    const mod = await tierModule(domain.tier);
    written.push(...(await mod.ensureDevKeys(policy, domain)));
  }
  return written;
}
