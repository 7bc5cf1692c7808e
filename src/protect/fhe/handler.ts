import type { DomainPolicy } from '../../config/types.js';
import { DEFAULTS } from '../../config/defaults.js';
import { PayloadError } from '../../errors.js';
import { parseFieldPath, type PathSegment } from '../json-path.js';
import type { PayloadContext, PayloadResult, TierHandler } from '../tier-handler.js';
import type { FheJob } from './job.js';
import { fhePool } from './pool.js';

export { PROTECTED_HEADER, parseJsonBody } from './job.js';

const compiledPaths = new WeakMap<DomainPolicy, PathSegment[][]>();

/** `fhe.paths` compiled once per loaded policy (domain objects are replaced on reload). */
export function pathsOf(domain: DomainPolicy): PathSegment[][] {
  let paths = compiledPaths.get(domain);
  if (!paths) {
    try {
      paths = (domain.fhe?.paths ?? []).map((p) => parseFieldPath(p));
    } catch (cause) {
      throw new PayloadError('payload_rejected', `domain ${domain.name} has an invalid fhe path`, { cause });
    }
    compiledPaths.set(domain, paths);
  }
  return paths;
}

export function maxLengthOf(domain: DomainPolicy): number {
  return domain.fhe?.maxLength ?? DEFAULTS.fheMaxLength;
}

function jobOf(op: FheJob['op'], body: Uint8Array, ctx: PayloadContext): FheJob {
  const { policy, domain } = ctx;
  return {
    op,
    body,
    contentType: ctx.contentType,
    keysDir: policy.keys.dir,
    domain: domain.name,
    keyringFile: domain.keyringFile,
    paths: domain.fhe?.paths ?? [],
    maxLength: maxLengthOf(domain),
    maxCiphertexts: domain.fhe?.maxCiphertexts ?? DEFAULTS.fheMaxCiphertexts,
    maxOutputBytes: domain.fhe?.maxOutputBytes ?? DEFAULTS.fheMaxOutputBytes,
  };
}

/**
 * FHE tier (contract section 5). `protect` encrypts numbers under the domain's CKKS key, in the
 * smallest form the keys present allow (seeded symmetric with the secret key, public-key otherwise),
 * and seals every other value with the domain's oct keyring. `unprotect` opens bodies only where the
 * domain's secret key file is present (the key owner's side); elsewhere it returns `undefined`, so
 * ciphertext passes on untouched. Non-JSON bodies are rejected: there is nothing to compute on, and
 * passing them would forward plaintext.
 *
 * The work runs on the SEAL thread (`pool.ts`), never on the event loop that answers Checks; the
 * bounds on ciphertexts and output bytes per body are the domain's `fhe` settings (`job.ts`).
 */
export class FheHandler implements TierHandler {
  readonly tier = 'FHE' as const;

  async protect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult> {
    // Paths are compiled here first, so a bad path is refused without a trip to the thread.
    pathsOf(ctx.domain);
    const out = await fhePool.run(jobOf('protect', body, ctx));
    if (!out) throw new PayloadError('internal_error', 'the FHE engine returned no body');
    return out;
  }

  unprotect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult | undefined> {
    return fhePool.run(jobOf('unprotect', body, ctx));
  }
}
