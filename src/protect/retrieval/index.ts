import { readFile } from 'node:fs/promises';
import type { CompiledPolicy, DomainPolicy } from '../../config/types.js';
import { loadKeyring, parseKeyring, type Keyring } from '../keyring.js';
import type { TierModule } from '../registry.js';
import { openRetrievalBody, RetrievalHandler } from './handler.js';
import { ensureOctKeyring } from './keys.js';

export { RetrievalHandler, PROTECTED_CONTENT_TYPE } from './handler.js';
export { rotateOctKeyring, ensureOctKeyring, newOctKey } from './keys.js';

async function keyringsFor(domain: DomainPolicy, keyFiles: readonly string[]): Promise<Keyring[]> {
  if (keyFiles.length === 0) return [await loadKeyring(domain.keyringFile)];
  return Promise.all(keyFiles.map(async (f) => parseKeyring(f, await readFile(f, 'utf8'), ['oct'])));
}

export const tierModule: TierModule = {
  handler: new RetrievalHandler(),
  async ensureDevKeys(_policy: CompiledPolicy, domain: DomainPolicy): Promise<string[]> {
    return (await ensureOctKeyring(domain.keyringFile)) ? [domain.keyringFile] : [];
  },
  async keyIds(_policy: CompiledPolicy, domain: DomainPolicy): Promise<string[]> {
    return (await loadKeyring(domain.keyringFile)).kids;
  },
  async openForOperator(body, { domain, keyFiles }): Promise<Uint8Array> {
    return openRetrievalBody(body, domain.name, await keyringsFor(domain, keyFiles));
  },
};
