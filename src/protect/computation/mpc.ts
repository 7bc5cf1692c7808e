import { createHash } from 'node:crypto';
import type { JWK } from 'jose';
import { PayloadError } from '../../errors.js';
import { fromField, mod, MODULUS, parseFieldElement } from './field.js';
import { decodeFixed, MAX_ABS_SCALED, MAX_SUM_TERMS, SCALE } from './fixed-point.js';
import { getAtPointer, parseFieldPath, parsePointer } from '../json-path.js';
import { MPC_SCHEME, MPC_VERSION, readEnvelope, type Envelope, type EnvelopeParty, type PartyBundle } from './mpc-format.js';
import { importPrivateJwk, type PrivateKey } from './private-keys.js';
import { openWithPrivateKeys } from './tee.js';

/**
 * The reconstruction side of MPC mode, for parties and operators: open one party's bundle with its
 * private key, rebuild values from every party's bundle, or compute on shares without rebuilding
 * them: each party sums its own shares locally (`sumShares`), and combining only those per-party sums
 * (`combineSums`) reveals the total and nothing about the individual values.
 */
export interface OpenedBundle {
  id: string;
  domain: string;
  party: string;
  index: number;
  parties: readonly string[];
  contentType: string;
  /** JSON Pointer → this party's share (field element). */
  shares: ReadonlyMap<string, bigint>;
  /** The document with shared values as null. */
  document: unknown;
}

function bad(message: string): PayloadError {
  return new PayloadError('payload_rejected', message);
}

function validateBundle(raw: unknown): OpenedBundle {
  const b = raw as Partial<PartyBundle> | null;
  if (!b || typeof b !== 'object') throw bad('MPC bundle is not a JSON object');
  if (b.version !== MPC_VERSION || b.scheme !== MPC_SCHEME) throw bad('MPC bundle has an unknown version or scheme');
  if (b.modulus !== MODULUS.toString() || b.scale !== Number(SCALE)) throw bad('MPC bundle uses another modulus or scale');
  if (typeof b.id !== 'string' || typeof b.domain !== 'string' || typeof b.party !== 'string') throw bad('MPC bundle lacks id, domain or party');
  if (!Array.isArray(b.parties) || b.parties.length < 2 || !b.parties.every((p) => typeof p === 'string')) throw bad('MPC bundle lists no parties');
  if (!Number.isInteger(b.index) || b.parties[b.index!] !== b.party) throw bad('MPC bundle party does not match its index');
  if (!b.shares || typeof b.shares !== 'object' || Array.isArray(b.shares)) throw bad('MPC bundle has no shares object');
  const shares = new Map<string, bigint>();
  for (const [pointer, text] of Object.entries(b.shares)) {
    const v = parseFieldElement(text);
    if (v === undefined) throw bad(`MPC bundle share at ${pointer} is not an element of the field`);
    shares.set(pointer, v);
  }
  return {
    id: b.id,
    domain: b.domain,
    party: b.party,
    index: b.index!,
    parties: b.parties,
    contentType: typeof b.content_type === 'string' ? b.content_type : 'application/json',
    shares,
    document: b.document ?? null,
  };
}

/**
 * Opens one party's bundle (the compact JWE string, or the envelope's party entry) with that party's
 * private JWK. Checks that the authenticated JWE header and the bundle agree on split id and party.
 */
export async function openPartyBundle(bundle: string | EnvelopeParty, partyPrivateJwk: JWK | PrivateKey | readonly PrivateKey[]): Promise<OpenedBundle> {
  const compact = typeof bundle === 'string' ? bundle : bundle.bundle;
  let keys: readonly PrivateKey[];
  if (Array.isArray(partyPrivateJwk)) keys = partyPrivateJwk as readonly PrivateKey[];
  else if ('kty' in partyPrivateJwk) keys = [await importPrivateJwk(partyPrivateJwk as JWK, 'party private key')];
  else keys = [partyPrivateJwk as PrivateKey];
  const { plaintext, header } = await openWithPrivateKeys(compact, keys);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext));
  } catch {
    throw bad('MPC bundle plaintext is not JSON');
  }
  const opened = validateBundle(doc);
  if (header.mpc_id !== opened.id || header.mpc_party !== opened.party || header.mesh_domain !== opened.domain) {
    throw bad('MPC bundle header and content disagree on id, party or domain');
  }
  return opened;
}

/** Parses a protected body into its envelope, or throws when it is not an MPC body. */
export function parseEnvelope(body: Uint8Array | string): Envelope {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof body === 'string' ? body : new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw bad('body is not JSON, so not an MPC envelope');
  }
  const env = readEnvelope(doc);
  if (!env) throw bad('body is not an MPC envelope ({"$mpc": {...}} version 1)');
  return env;
}

/** Orders bundles by party index and checks they are exactly one per party of the same split. */
function checkComplete(bundles: readonly OpenedBundle[], what: string): OpenedBundle[] {
  if (bundles.length === 0) throw bad(`${what}: no bundles given`);
  const first = bundles[0]!;
  const n = first.parties.length;
  const byIndex = new Array<OpenedBundle | undefined>(n);
  for (const b of bundles) {
    if (b.parties.length !== n || b.parties.some((p, i) => p !== first.parties[i])) throw bad(`${what}: bundles list different parties`);
    if (byIndex[b.index]) throw bad(`${what}: two bundles for party ${b.party}`);
    byIndex[b.index] = b;
  }
  const missing = first.parties.filter((_, i) => !byIndex[i]);
  if (missing.length > 0) throw bad(`${what}: missing the bundle of ${missing.join(', ')}`);
  return byIndex as OpenedBundle[];
}

export interface Reconstructed {
  /** The original document with every shared value restored. */
  document: unknown;
  /** JSON Pointer → value. */
  values: Record<string, number>;
  contentType: string;
}

/** Rebuilds every shared value from one bundle per party of the same split. */
export function reconstruct(bundles: readonly OpenedBundle[]): Reconstructed {
  const ordered = checkComplete(bundles, 'reconstruct');
  const first = ordered[0]!;
  if (ordered.some((b) => b.id !== first.id)) throw bad('reconstruct: bundles come from different splits');
  const pointers = [...first.shares.keys()];
  for (const b of ordered) {
    if (b.shares.size !== pointers.length || pointers.some((p) => !b.shares.has(p))) throw bad('reconstruct: bundles share different fields');
  }
  const document: unknown = structuredClone(first.document);
  const values: Record<string, number> = {};
  for (const pointer of pointers) {
    let acc = 0n;
    for (const b of ordered) acc += b.shares.get(pointer)!;
    const scaled = fromField(mod(acc));
    // A split never encodes more than MAX_ABS_SCALED; a larger result means the shares were altered.
    if (scaled > MAX_ABS_SCALED || scaled < -MAX_ABS_SCALED) throw bad(`reconstruct: shares at ${pointer} do not add up to an in-range value (altered shares)`);
    const value = decodeFixed(scaled);
    Object.defineProperty(values, pointer, { value, enumerable: true, writable: true, configurable: true });
    const slot = getAtPointer(document, parsePointer(pointer));
    if (!slot || (slot.parent as Record<string | number, unknown>)[slot.key] !== null) throw bad(`reconstruct: ${pointer} is not a shared slot of the document`);
    Object.defineProperty(slot.parent, slot.key, { value, enumerable: true, writable: true, configurable: true });
  }
  return { document, values, contentType: first.contentType };
}

/** What one party reveals for a sum: its local sum of shares, which alone is uniformly random. */
export interface PartySum {
  party: string;
  index: number;
  parties: readonly string[];
  /** Number of shares added. */
  terms: number;
  /** SHA-256 over the split ids and pointers summed, so parties can check they summed the same things. */
  digest: string;
  /** The local sum mod p, decimal. */
  sum: string;
}

/** Selects share pointers: a JSON Pointer (`/orders/0/amount`) names itself, a field path (`$.orders[*].amount`) every match. */
function pointerSelector(paths: readonly string[] | undefined): (pointer: string) => boolean {
  if (paths === undefined) return () => true;
  const exact = new Set(paths.filter((p) => p.startsWith('/') || p === ''));
  const patterns = paths.filter((p) => !(p.startsWith('/') || p === '')).map((p) => {
    try {
      return parseFieldPath(p);
    } catch (cause) {
      throw new PayloadError('payload_rejected', `sumShares: ${(cause as Error).message}`);
    }
  });
  return (pointer) => {
    if (exact.has(pointer)) return true;
    const tokens = parsePointer(pointer);
    return patterns.some(
      (segs) => segs.length === tokens.length && segs.every((s, i) => s.kind === 'wildcard' || (s.kind === 'key' ? s.key === tokens[i] : String(s.index) === tokens[i])),
    );
  };
}

/**
 * One party's local step of a secure sum: adds its shares at `paths` (JSON Pointers such as
 * `/amount`, or field paths such as `$.orders[*].amount`; all its shares when omitted) over all the
 * given bundles (one per record, all this party's). Fields absent from a record are skipped; every
 * party skips the same ones, since all bundles of a split hold the same pointers.
 */
export function sumShares(partyShares: readonly OpenedBundle[], paths?: readonly string[]): PartySum {
  const selected = pointerSelector(paths);
  if (partyShares.length === 0) throw bad('sumShares: no bundles given');
  const first = partyShares[0]!;
  const ids = new Set<string>();
  const summed: string[] = [];
  let acc = 0n;
  for (const b of partyShares) {
    if (b.party !== first.party || b.index !== first.index) throw bad('sumShares: bundles of different parties; each party sums only its own');
    if (ids.has(b.id)) throw bad(`sumShares: split ${b.id} given twice`);
    ids.add(b.id);
    for (const [p, s] of b.shares) {
      if (!selected(p)) continue;
      acc += s;
      summed.push(`${b.id}\u0000${p}`);
    }
  }
  if (summed.length > MAX_SUM_TERMS) throw bad(`sumShares: more than ${MAX_SUM_TERMS} terms could wrap the field`);
  const digest = createHash('sha256').update(summed.sort().join('\n')).digest('hex');
  return { party: first.party, index: first.index, parties: first.parties, terms: summed.length, digest, sum: mod(acc).toString() };
}

/** Combines every party's `PartySum` into the plaintext total. */
export function combineSums(sums: readonly PartySum[]): { total: number; terms: number } {
  if (sums.length === 0) throw bad('combineSums: no sums given');
  const first = sums[0]!;
  const n = first.parties.length;
  const seen = new Set<number>();
  let acc = 0n;
  for (const s of sums) {
    if (s.parties.length !== n || s.parties.some((p, i) => p !== first.parties[i])) throw bad('combineSums: sums list different parties');
    if (s.digest !== first.digest || s.terms !== first.terms) throw bad('combineSums: parties summed different records or fields');
    if (seen.has(s.index)) throw bad(`combineSums: two sums for party ${s.party}`);
    seen.add(s.index);
    const v = parseFieldElement(s.sum);
    if (v === undefined) throw bad(`combineSums: sum of ${s.party} is not a field element`);
    acc += v;
  }
  if (seen.size !== n) throw bad(`combineSums: need the sums of all ${n} parties, got ${seen.size}`);
  const scaled = fromField(mod(acc));
  const bound = MAX_ABS_SCALED * BigInt(Math.max(1, first.terms));
  if (scaled > bound || scaled < -bound) throw bad('combineSums: sums do not add up to an in-range total (altered shares)');
  return { total: decodeFixed(scaled), terms: first.terms };
}

/** Opens every bundle of an envelope for which `keys` hold the party key, then reconstructs. */
export async function openEnvelope(body: Uint8Array | string, keys: readonly PrivateKey[], expectDomain?: string): Promise<Reconstructed> {
  const env = parseEnvelope(body);
  if (expectDomain !== undefined && env.domain !== expectDomain) throw bad(`MPC envelope belongs to domain ${env.domain}, not ${expectDomain}`);
  const opened: OpenedBundle[] = [];
  const missing: string[] = [];
  for (const p of env.parties) {
    const own = keys.filter((k) => k.kid === p.kid);
    if (own.length === 0) {
      missing.push(p.name);
      continue;
    }
    const b = await openPartyBundle(p, own);
    if (b.party !== p.name || b.id !== env.id || b.domain !== env.domain) throw bad(`bundle of ${p.name} does not belong to this envelope`);
    opened.push(b);
  }
  if (missing.length > 0) throw bad(`need the private keys of every party; missing: ${missing.join(', ')}`);
  return reconstruct(opened);
}
