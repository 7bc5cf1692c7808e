import { randomBytes } from 'node:crypto';
import { PayloadError } from '../../errors.js';
import { MODULUS } from './field.js';
import { SCALE } from './fixed-point.js';
import { ENVELOPE_MEMBER, MPC_SCHEME, MPC_VERSION, type Envelope, type PartyBundle } from './mpc-format.js';
import type { RecipientKey } from './recipients.js';
import { collectTargets, splitSecrets } from './shares.js';
import { sealToRecipient } from './tee.js';

export interface MpcParty {
  name: string;
  recipient: RecipientKey;
}

export interface MpcSealOptions {
  domain: string;
  contentType: string | undefined;
  fields: readonly string[];
}

const encoder = new TextEncoder();

function setAt(doc: unknown, tokens: readonly (string | number)[], value: unknown): void {
  let cur = doc as Record<string | number, unknown>;
  for (let i = 0; i < tokens.length - 1; i++) cur = cur[tokens[i]!] as Record<string | number, unknown>;
  // defineProperty, not assignment: a member literally named "__proto__" must stay a plain member.
  Object.defineProperty(cur, tokens[tokens.length - 1]!, { value, writable: true, enumerable: true, configurable: true });
}

/**
 * Splits the numeric fields of a parsed JSON document into additive shares, one bundle per party
 * sealed to that party's key, and returns the envelope body. Throws PayloadError on any value it
 * cannot share; nothing of the document leaves in plaintext (the non-shared remainder travels
 * inside every bundle, not beside them).
 */
export async function sealMpc(doc: unknown, parties: readonly MpcParty[], opts: MpcSealOptions): Promise<Uint8Array> {
  if (parties.length < 2) throw new PayloadError('attestation_failed', 'MPC needs at least two parties with keys');
  const targets = collectTargets(doc, opts.fields);
  const shares = splitSecrets(
    targets.map((t) => t.scaled),
    parties.length,
  );
  const template: unknown = structuredClone(doc);
  for (const t of targets) setAt(template, t.tokens, null);
  const id = randomBytes(16).toString('base64url');
  const names = parties.map((p) => p.name);
  const envelope: Envelope = {
    version: MPC_VERSION,
    scheme: MPC_SCHEME,
    modulus: MODULUS.toString(),
    scale: Number(SCALE),
    id,
    domain: opts.domain,
    fields: [...opts.fields],
    parties: [],
  };
  for (const [index, party] of parties.entries()) {
    const bundle: PartyBundle = {
      version: MPC_VERSION,
      scheme: MPC_SCHEME,
      id,
      domain: opts.domain,
      party: party.name,
      index,
      parties: names,
      modulus: envelope.modulus,
      scale: envelope.scale,
      content_type: opts.contentType ?? 'application/json',
      shares: Object.fromEntries(targets.map((t, i) => [t.pointer, shares[index]![i]!.toString()])),
      document: template,
    };
    const compact = await sealToRecipient(encoder.encode(JSON.stringify(bundle)), party.recipient, {
      mesh_domain: opts.domain,
      mpc_id: id,
      mpc_party: party.name,
      cty: 'application/json',
    });
    envelope.parties.push({ name: party.name, kid: party.recipient.kid, bundle: compact });
  }
  return encoder.encode(JSON.stringify({ [ENVELOPE_MEMBER]: envelope }));
}
