/**
 * The MPC wire format (version 1), shared by the sealing side (mesh-pep) and the opening side
 * (parties, operators). Documented field by field in docs/computation.md.
 *
 * Body sent to the callee (content type application/json):
 *   {"$mpc": {"version": 1, "scheme": "additive", "modulus": "<p, decimal>", "scale": 1000000,
 *             "id": "<random id of this split>", "domain": "<domain>", "fields": [<configured paths>],
 *             "parties": [{"name": "<party>", "kid": "<key id>", "bundle": "<compact JWE>"}, …]}}
 *
 * Each bundle is a JWE (ECDH-ES+A256KW, A256GCM; header kid, mesh_domain, mpc_id, mpc_party,
 * cty application/json) to that party's key, whose plaintext is a PartyBundle.
 */
export const MPC_VERSION = 1;
export const MPC_SCHEME = 'additive';
export const ENVELOPE_MEMBER = '$mpc';

export interface EnvelopeParty {
  name: string;
  kid: string;
  bundle: string;
}

export interface Envelope {
  version: number;
  scheme: string;
  modulus: string;
  scale: number;
  id: string;
  domain: string;
  fields: string[];
  parties: EnvelopeParty[];
}

export interface PartyBundle {
  version: number;
  scheme: string;
  id: string;
  domain: string;
  /** This party's name and position in `parties`. */
  party: string;
  index: number;
  /** Every party's name, in split order: reconstruction needs a bundle from each. */
  parties: string[];
  modulus: string;
  scale: number;
  /** Content type of the original body. */
  content_type: string;
  /** JSON Pointer (RFC 6901) of each shared value → this party's share, a decimal string in [0, p). */
  shares: Record<string, string>;
  /** The original document with every shared value replaced by null. */
  document: unknown;
}

/** Reads the envelope out of a body; undefined when the body is not one. */
export function readEnvelope(doc: unknown): Envelope | undefined {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const e = (doc as Record<string, unknown>)[ENVELOPE_MEMBER] as Partial<Envelope> | undefined;
  if (!e || typeof e !== 'object') return undefined;
  if (e.version !== MPC_VERSION || e.scheme !== MPC_SCHEME || !Array.isArray(e.parties)) return undefined;
  for (const p of e.parties) {
    if (!p || typeof p.name !== 'string' || typeof p.kid !== 'string' || typeof p.bundle !== 'string') return undefined;
  }
  return e as Envelope;
}
