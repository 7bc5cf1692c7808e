import type { CompiledPolicy, ComputationSettings, DomainPolicy } from '../../config/types.js';
import { MeshError, PayloadError } from '../../errors.js';
import { looksLikeCompactJwe, openForDomain, utf8 } from '../jwe.js';
import { loadKeyring } from '../keyring.js';
import type { PayloadContext, PayloadResult, TierHandler } from '../tier-handler.js';
import { sealMpc, type MpcParty } from './mpc-seal.js';
import { chooseTrusted, loadRecipientSet, RecipientFileError, type RecipientKey } from './recipients.js';
import { sealToEnclave } from './tee.js';

export const PROTECTED_HEADER = 'x-mesh-protected';
export const JOSE_CONTENT_TYPE = 'application/jose';

function settingsOf(domain: DomainPolicy): ComputationSettings {
  if (!domain.computation) throw new PayloadError('internal_error', `domain ${domain.name} has no computation settings`);
  return domain.computation;
}

async function recipientsOrFail(file: string | undefined, what: string): Promise<RecipientKey[]> {
  if (!file) throw new PayloadError('attestation_failed', `${what}: no key file configured`);
  try {
    return await loadRecipientSet(file);
  } catch (cause) {
    if (cause instanceof RecipientFileError) throw new PayloadError('attestation_failed', `${what}: ${cause.message}`, { cause });
    throw cause;
  }
}

/** TEE: the last recipient key whose measurement is trusted; none means nothing may be sent. */
export async function trustedRecipient(policy: CompiledPolicy, domain: DomainPolicy): Promise<RecipientKey> {
  const keys = await recipientsOrFail(settingsOf(domain).recipientsFile, `domain ${domain.name} enclave recipients`);
  const chosen = chooseTrusted(keys, policy.trustedMeasurements);
  if (!chosen) throw new PayloadError('attestation_failed', `domain ${domain.name}: no recipient key carries a trusted measurement`);
  return chosen;
}

/** MPC: each party's current key (the last listed in its JWK Set). */
export async function partyRecipients(domain: DomainPolicy): Promise<MpcParty[]> {
  const { parties } = settingsOf(domain);
  if (parties.length < 2) throw new PayloadError('attestation_failed', `domain ${domain.name}: MPC needs at least two parties, ${parties.length} configured`);
  const out: MpcParty[] = [];
  for (const party of parties) {
    const keys = await recipientsOrFail(party.jwksFile, `domain ${domain.name} party ${party.name}`);
    const last = keys[keys.length - 1];
    if (!last) throw new PayloadError('attestation_failed', `domain ${domain.name} party ${party.name}: key set is empty`);
    out.push({ name: party.name, recipient: last });
  }
  return out;
}

function isJsonType(contentType: string | undefined): boolean {
  if (contentType === undefined || contentType === '') return true;
  const essence = contentType.split(';')[0]!.trim().toLowerCase();
  return essence === 'application/json' || essence.endsWith('+json');
}

function parseJsonBody(body: Uint8Array, contentType: string | undefined): object {
  if (!isJsonType(contentType)) throw new PayloadError('payload_rejected', 'MPC mode shares JSON bodies only');
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new PayloadError('payload_rejected', 'MPC mode: body is not valid UTF-8 JSON');
  }
  if (doc === null || typeof doc !== 'object') throw new PayloadError('payload_rejected', 'MPC mode: body must be a JSON object or array');
  return doc;
}

async function failClosed<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (cause) {
    if (cause instanceof MeshError) throw cause;
    throw new PayloadError('internal_error', 'COMPUTATION protection failed unexpectedly', { cause });
  }
}

export const computationHandler: TierHandler = {
  tier: 'COMPUTATION',

  protect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult> {
    return failClosed(async () => {
      const settings = settingsOf(ctx.domain);
      if (settings.mode === 'tee') {
        const recipient = await trustedRecipient(ctx.policy, ctx.domain);
        const compact = await sealToEnclave(body, recipient, { domain: ctx.domain.name, contentType: ctx.contentType });
        return { body: utf8(compact), contentType: JOSE_CONTENT_TYPE, headers: { [PROTECTED_HEADER]: 'COMPUTATION' } };
      }
      const parties = await partyRecipients(ctx.domain);
      const doc = parseJsonBody(body, ctx.contentType);
      const sealed = await sealMpc(doc, parties, { domain: ctx.domain.name, contentType: ctx.contentType, fields: settings.fields });
      return { body: sealed, contentType: 'application/json', headers: { [PROTECTED_HEADER]: 'COMPUTATION' } };
    });
  },

  /**
   * Responses the enclave (or an MPC aggregator) sealed back to the domain's own oct key are opened for
   * the caller, as in RETRIEVAL. Anything that is not a compact JWE passes unchanged.
   */
  unprotect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult | undefined> {
    return failClosed(async () => {
      const text = new TextDecoder('utf-8').decode(body).trim();
      if (!looksLikeCompactJwe(text)) return undefined;
      const ring = await loadKeyring(ctx.domain.keyringFile);
      const opened = await openForDomain(text, ring, ctx.domain.name);
      return { body: opened.plaintext, contentType: opened.contentType ?? 'application/octet-stream', headers: {} };
    });
  },
};
