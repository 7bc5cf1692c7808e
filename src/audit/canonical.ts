import { sha256 } from '../sha256.js';

/** prev_hash of the first record of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

type Json = string | number | boolean | null | readonly Json[] | { readonly [k: string]: Json | undefined };

/**
 * Canonical JSON: object keys sorted by UTF-16 code unit, no whitespace, `undefined` members dropped.
 * For the values audit records hold (strings, integers, booleans, null, flat objects) this is the same
 * text RFC 8785 (JCS) produces, so the hash can be recomputed by any JCS implementation.
 */
export function canonicalJson(value: unknown): string {
  return write(value as Json);
}

function write(v: Json): string {
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new TypeError('audit records hold finite numbers only');
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${(v as readonly Json[]).map(write).join(',')}]`;
  return `{${members(v as { readonly [k: string]: Json | undefined }).join(',')}}`;
}

// Records use a few dozen distinct keys; quoting each once saves a JSON.stringify per member.
const quotedKeys = new Map<string, string>();

function quoted(k: string): string {
  let q = quotedKeys.get(k);
  if (q === undefined) {
    q = JSON.stringify(k);
    if (quotedKeys.size < 1024) quotedKeys.set(k, q);
  }
  return q;
}

/** `"key":value` for each defined member, in key order; the keys written are pushed onto `keys`. */
function members(obj: { readonly [k: string]: Json | undefined }, keys?: string[]): string[] {
  const parts: string[] = [];
  for (const k of Object.keys(obj).sort()) {
    const member = obj[k];
    if (member === undefined) continue;
    parts.push(`${quoted(k)}:${write(member)}`);
    keys?.push(k);
  }
  return parts;
}

/** SHA-256 hex over the canonical form of a record without its `hash` member. */
export function recordHash(recordWithoutHash: Readonly<Record<string, unknown>>): string {
  return sha256Hex(canonicalJson(recordWithoutHash));
}

/**
 * The hash of a record (without `hash`) and its canonical line with `hash` added, serializing the
 * record once: the writer needs both for every record, and serializing twice was most of its CPU.
 * Same results as `recordHash(r)` and `canonicalJson({...r, hash})`.
 */
export function hashedLine(recordWithoutHash: Readonly<Record<string, unknown>>): { hash: string; line: string } {
  const keys: string[] = [];
  const parts = members(recordWithoutHash as { readonly [k: string]: Json | undefined }, keys);
  const body = parts.join(',');
  const hash = sha256Hex(`{${body}}`);
  // "hash" goes where key order puts it among the others.
  let at = 0;
  while (at < keys.length && keys[at]! < 'hash') at++;
  if (at === keys.length) return { hash, line: `{${body}${body ? ',' : ''}"hash":"${hash}"}` };
  parts.splice(at, 0, `"hash":"${hash}"`);
  return { hash, line: `{${parts.join(',')}}` };
}

function sha256Hex(text: string): string {
  return sha256(text, 'hex');
}

/**
 * Every member a record written by the sink can have (the AuditEvent fields `sanitizeEvent` keeps,
 * plus `ts` and `prev_hash`), in canonical key order, with `hash` among them.
 */
const RECORD_KEYS = [
  'agent', 'audit_level', 'decision', 'decision_id', 'domain', 'event', 'finding_layers', 'findings', 'hash', 'payload_bytes',
  'payload_sha256', 'prev_hash', 'reason', 'role', 'target', 'tier', 'trace_id', 'ts',
].sort();
const RECORD_KEY_SET: ReadonlySet<string> = new Set(RECORD_KEYS);

/**
 * `hashedLine({ ...event, ts, prev_hash })` for the writer's hot path: the members are visited in a key
 * order computed once (no per-record key sort, no merged copy of the event), and the text before and
 * after `hash` is built once and reused for both the hashed form and the line. An event with a member
 * outside RECORD_KEYS takes the general path, so the result is always the same as `hashedLine`'s.
 */
export function chainedLine(event: Readonly<Record<string, unknown>>, ts: string, prevHash: string): { hash: string; line: string } {
  for (const k in event) {
    if (!RECORD_KEY_SET.has(k) || k === 'hash' || k === 'ts' || k === 'prev_hash') return hashedLine({ ...event, ts, prev_hash: prevHash });
  }
  let before = '';
  let after = '';
  let passedHash = false;
  for (const k of RECORD_KEYS) {
    if (k === 'hash') {
      passedHash = true;
      continue;
    }
    const v = k === 'ts' ? ts : k === 'prev_hash' ? prevHash : event[k];
    if (v === undefined) continue;
    const member = `${quoted(k)}:${write(v as Json)}`;
    if (passedHash) after = after ? `${after},${member}` : member;
    else before = before ? `${before},${member}` : member;
  }
  const hash = sha256Hex(before && after ? `{${before},${after}}` : `{${before}${after}}`);
  return { hash, line: `{${before}${before ? ',' : ''}"hash":"${hash}"${after ? ',' : ''}${after}}` };
}
