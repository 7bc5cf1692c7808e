import { createHash } from 'node:crypto';

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
  const obj = v as { readonly [k: string]: Json | undefined };
  const parts: string[] = [];
  for (const k of Object.keys(obj).sort()) {
    const member = obj[k];
    if (member === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${write(member)}`);
  }
  return `{${parts.join(',')}}`;
}

/** SHA-256 hex over the canonical form of a record without its `hash` member. */
export function recordHash(recordWithoutHash: Readonly<Record<string, unknown>>): string {
  return createHash('sha256').update(canonicalJson(recordWithoutHash), 'utf8').digest('hex');
}
