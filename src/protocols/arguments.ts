import { RE2JS } from 're2js';

/**
 * Constraints on `params.arguments` values, compiled once per policy load. Each constraint applies to
 * values of its kind, and a value of another kind fails it (fail closed): `max: 1000` refuses the
 * string "5000" rather than ignoring it. `pattern` runs on RE2 (re2js), which matches in linear time
 * and has no backreferences or lookaround, so no policy pattern can be made to backtrack.
 */
export type ArgumentType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null';
export const ARGUMENT_TYPES: readonly ArgumentType[] = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'];

export interface RawArgumentConstraint {
  type?: ArgumentType;
  enum?: Array<string | number | boolean>;
  pattern?: string;
  min?: number;
  max?: number;
  min_length?: number;
  max_length?: number;
  max_items?: number;
}

export type ArgumentCheck = (value: unknown) => boolean;

function typeOk(type: ArgumentType, v: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'null':
      return v === null;
  }
}

/** Length in Unicode code points, as JSON Schema's maxLength counts. */
function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** Compiles a regex pattern with RE2 semantics, or returns the reason it cannot be used. */
export function compilePattern(pattern: string): { test(s: string): boolean } | string {
  try {
    return RE2JS.compile(pattern);
  } catch (e) {
    return (e as Error).message;
  }
}

/** Throws on a pattern that does not compile; load-time validation reports that first. */
export function compileArgumentCheck(c: RawArgumentConstraint): ArgumentCheck {
  const checks: ArgumentCheck[] = [];
  if (c.type !== undefined) {
    const t = c.type;
    checks.push((v) => typeOk(t, v));
  }
  if (c.enum !== undefined) {
    const allowed = c.enum;
    checks.push((v) => allowed.some((a) => a === v));
  }
  if (c.pattern !== undefined) {
    const re = compilePattern(c.pattern);
    if (typeof re === 'string') throw new Error(`pattern does not compile: ${re}`);
    checks.push((v) => typeof v === 'string' && re.test(v));
  }
  if (c.min !== undefined) {
    const min = c.min;
    checks.push((v) => typeof v === 'number' && Number.isFinite(v) && v >= min);
  }
  if (c.max !== undefined) {
    const max = c.max;
    checks.push((v) => typeof v === 'number' && Number.isFinite(v) && v <= max);
  }
  if (c.min_length !== undefined) {
    const n = c.min_length;
    checks.push((v) => typeof v === 'string' && codePoints(v) >= n);
  }
  if (c.max_length !== undefined) {
    const n = c.max_length;
    checks.push((v) => typeof v === 'string' && codePoints(v) <= n);
  }
  if (c.max_items !== undefined) {
    const n = c.max_items;
    checks.push((v) => Array.isArray(v) && v.length <= n);
  }
  return (v) => {
    for (const check of checks) if (!check(v)) return false;
    return true;
  };
}
