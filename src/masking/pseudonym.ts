import { createHmac } from 'node:crypto';

/**
 * Pseudonyms for agent ids in masking domains: HMAC-SHA256 under a per-domain key derived from one
 * secret. Stable (the callee can rate-limit or correlate one caller), different per domain (two domains'
 * callees cannot join their views), and not reversible without the secret.
 */
export class Pseudonymizer {
  private readonly domainKeys = new Map<string, Buffer>();
  private readonly memo = new Map<string, string>();

  constructor(private readonly secret: Uint8Array) {
    if (secret.length < 32) throw new TypeError('pseudonym key must be at least 32 bytes');
  }

  /** The per-domain key, for other keyed hashes of the same domain (audit targets). */
  keyFor(domain: string): Buffer {
    let k = this.domainKeys.get(domain);
    if (!k) {
      k = createHmac('sha256', this.secret).update(`mesh-pep/pseudonym/v1/${domain}`).digest();
      this.domainKeys.set(domain, k);
    }
    return k;
  }

  /** `ap_` + 32 hex chars (128 bits): short enough for a header, long enough to never collide in practice. */
  pseudonym(domain: string, agentId: string): string {
    const memoKey = `${domain}\u0000${agentId}`;
    let p = this.memo.get(memoKey);
    if (!p) {
      p = 'ap_' + createHmac('sha256', this.keyFor(domain)).update(agentId).digest('hex').slice(0, 32);
      // Agents are few and long-lived; the bound only stops a flood of distinct ids from growing memory.
      if (this.memo.size > 50_000) this.memo.clear();
      this.memo.set(memoKey, p);
    }
    return p;
  }

  /** Key of the MAC that binds Check's request headers to its decision (`policy/binding.ts`). */
  bindingKey(): Buffer {
    return this.keyFor('\u0000decision-binding');
  }

  /** Keyed hash for other values that must not appear in clear (e.g. a masked request path in audit). */
  keyedHash(domain: string, value: string): string {
    return createHmac('sha256', this.keyFor(domain)).update(`value:${value}`).digest('hex').slice(0, 32);
  }
}
