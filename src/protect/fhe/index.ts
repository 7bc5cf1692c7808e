import { readFile } from 'node:fs/promises';
import type { CompiledPolicy, DomainPolicy } from '../../config/types.js';
import { PayloadError } from '../../errors.js';
import { loadKeyring, parseKeyring, type Keyring } from '../keyring.js';
import type { TierModule } from '../registry.js';
import { ensureOctKeyring } from '../retrieval/keys.js';
import { FheHandler, maxLengthOf, parseJsonBody } from './handler.js';
import { generateFheKeys, loadFheKeys, readKeyId } from './keys.js';
import { guardSeal } from './seal.js';
import { openJson } from './transform.js';

/**
 * The FHE tier. Importing this module does not load node-seal's WASM: that happens on the first
 * protect/unprotect/open/keygen (see `seal.ts`, `isSealLoaded`).
 */
export { FheHandler, PROTECTED_HEADER } from './handler.js';
export { FheAnalyst, type Plain, type ValueInfo } from './analyst.js';
export { fheKeyFiles, generateFheKeys, loadFheKeys, readKeyId, type FheKeySet, type EncryptionMode } from './keys.js';
export { CKKS } from './params.js';
export { isSealLoaded, sealLoadCount, sealLoadMillis } from './seal.js';
export type { FheEnvelope, FheObject } from './wire.js';

async function keyringIfPresent(file: string): Promise<Keyring | undefined> {
  try {
    return await loadKeyring(file);
  } catch {
    return undefined;
  }
}

type OpenOptions = Parameters<TierModule['openForOperator']>[1];

/**
 * `keyFiles` (from `--key`): a `.json` file is an oct keyring (JWK Set) for sealed values; any other
 * file is the CKKS secret key. Without them the domain's own files under `keys.dir` are used.
 */
async function openBody(body: Uint8Array, { policy, domain, keyFiles }: OpenOptions): Promise<Uint8Array> {
  const doc = parseJsonBody(body);
  if (doc === undefined) throw new PayloadError('payload_rejected', 'body is not JSON');
  const ringFiles = keyFiles.filter((f) => f.endsWith('.json'));
  const secretFiles = keyFiles.filter((f) => !f.endsWith('.json'));
  if (secretFiles.length > 1) throw new PayloadError('payload_rejected', 'give at most one FHE secret key file');
  let rings: Keyring[];
  if (ringFiles.length > 0) {
    rings = await Promise.all(ringFiles.map(async (f) => parseKeyring(f, await readFile(f, 'utf8'), ['oct'])));
  } else {
    // May be absent when the body holds only $fhe values (an analyst's result); sealed values then fail.
    const ring = await keyringIfPresent(domain.keyringFile);
    rings = ring ? [ring] : [];
  }
  const fhe = await loadFheKeys(policy.keys.dir, domain.name, { secret: secretFiles[0] ? { file: secretFiles[0] } : 'auto' });
  if (!fhe.decryptor) throw new PayloadError('payload_rejected', `the FHE secret key of domain ${domain.name} is not present here`);
  const opened = await openJson(doc, fhe, rings, domain.name, maxLengthOf(domain));
  return new TextEncoder().encode(`${JSON.stringify(opened)}\n`);
}

export const tierModule: TierModule = {
  handler: new FheHandler(),

  async ensureDevKeys(policy: CompiledPolicy, domain: DomainPolicy): Promise<string[]> {
    const written = await generateFheKeys(policy.keys.dir, domain.name);
    if (await ensureOctKeyring(domain.keyringFile)) written.push(domain.keyringFile);
    return written;
  },

  /** The CKKS key id, then the oct keyring's kids; read from files without loading the WASM. */
  async keyIds(policy: CompiledPolicy, domain: DomainPolicy): Promise<string[]> {
    const fheId = await readKeyId(policy.keys.dir, domain.name);
    const ring = await keyringIfPresent(domain.keyringFile);
    return [...(fheId ? [fheId] : []), ...(ring?.kids ?? [])];
  },

  openForOperator(body, opts): Promise<Uint8Array> {
    return guardSeal(() => openBody(body, opts));
  },
};
