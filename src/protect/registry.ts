import type { CompiledPolicy, DomainPolicy, Tier } from '../config/types.js';
import type { TierHandler } from './tier-handler.js';

/**
 * What each tier contributes: its handler, and how `mesh-pep keys init` creates the development keys
 * its domains need. Tier modules load lazily, so node-seal's WASM is only loaded when an FHE domain
 * exists, and once.
 */
export interface TierModule {
  handler: TierHandler;
  /** Creates the key files this domain needs that are missing; returns the paths it wrote. */
  ensureDevKeys(policy: CompiledPolicy, domain: DomainPolicy): Promise<string[]>;
  /** Key ids currently serving for this domain (for Status / operators). */
  keyIds(policy: CompiledPolicy, domain: DomainPolicy): Promise<string[]>;
  /**
   * `mesh-pep open`: returns the plaintext of a protected body for an operator holding the keys.
   * `keyFiles` are the private key files given with `--key` (COMPUTATION recipients/parties); tiers that
   * open with the domain's own keys (RETRIEVAL, FHE) use the policy's key files when none are given.
   */
  openForOperator(body: Uint8Array, opts: { policy: CompiledPolicy; domain: DomainPolicy; keyFiles: readonly string[] }): Promise<Uint8Array>;
}

const LOADERS: Record<Tier, () => Promise<TierModule>> = {
  RETRIEVAL: async () => (await import('./retrieval/index.js')).tierModule,
  COMPUTATION: async () => (await import('./computation/index.js')).tierModule,
  FHE: async () => (await import('./fhe/index.js')).tierModule,
};

const loaded = new Map<Tier, Promise<TierModule>>();

export function tierModule(tier: Tier): Promise<TierModule> {
  let m = loaded.get(tier);
  if (!m) {
    m = LOADERS[tier]();
    loaded.set(tier, m);
    m.catch(() => loaded.delete(tier));
  }
  return m;
}
