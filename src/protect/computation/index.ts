import type { CompiledPolicy, DomainPolicy } from '../../config/types.js';
import { loadKeyring } from '../keyring.js';
import type { TierModule } from '../registry.js';
import { ensureDevKeys } from './dev-keys.js';
import { computationHandler } from './handler.js';
import { openForOperator } from './operator.js';
import { loadRecipientSet } from './recipients.js';

/**
 * COMPUTATION tier: request bodies sealed to an attested enclave (TEE mode) or split into additive
 * shares sealed to several parties (MPC mode). See docs/computation.md.
 */
async function keyIds(_policy: CompiledPolicy, domain: DomainPolicy): Promise<string[]> {
  const ids: string[] = [];
  // Status must not fail because one file is missing: list what can be read.
  const files = [domain.computation?.mode === 'tee' ? domain.computation.recipientsFile : undefined, ...(domain.computation?.mode === 'mpc' ? domain.computation.parties.map((p) => p.jwksFile) : [])];
  try {
    ids.push(...(await loadKeyring(domain.keyringFile)).kids);
  } catch {
    // no domain keyring yet
  }
  for (const f of files) {
    if (!f) continue;
    try {
      ids.push(...(await loadRecipientSet(f)).map((k) => k.kid));
    } catch {
      // unreadable recipient set: the handler answers attestation_failed for it
    }
  }
  return ids;
}

export const tierModule: TierModule = {
  handler: computationHandler,
  ensureDevKeys,
  keyIds,
  openForOperator,
};

export { computationHandler } from './handler.js';
export { openForOperator } from './operator.js';
export { ensureDevKeys, generateRecipientJwks, enclavePrivateKeyFile, partyPrivateKeyFile } from './dev-keys.js';
export { openPartyBundle, reconstruct, sumShares, combineSums, openEnvelope, parseEnvelope } from './mpc.js';
export type { OpenedBundle, Reconstructed, PartySum } from './mpc.js';
export type { Envelope, EnvelopeParty, PartyBundle } from './mpc-format.js';
export { parseFieldPath, FieldPathError } from '../json-path.js';
export { MODULUS } from './field.js';
export { SCALE, MAX_ABS_VALUE, MAX_SUM_TERMS } from './fixed-point.js';
export { loadPrivateKeyFile, importPrivateJwk } from './private-keys.js';
export type { PrivateKey } from './private-keys.js';
