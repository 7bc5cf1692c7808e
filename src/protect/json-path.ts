/**
 * The small JSONPath subset that `computation.fields` and `fhe.paths` use to name numeric fields, and JSON Pointers
 * (RFC 6901) that name each concrete value in a share bundle (a standard every language can resolve).
 *
 * Field syntax: an optional `$`, then segments `.name`, `['name']` / `["name"]`, `[3]`, `.*` or `[*]`
 * (every member or element). The first `.` may be left out: `totals.revenue` = `$.totals.revenue`.
 * Recursive descent (`..`), filters and slices are not supported and are rejected.
 */
export type PathSegment = { kind: 'key'; key: string } | { kind: 'index'; index: number } | { kind: 'wildcard' };

export class FieldPathError extends TypeError {
  override name = 'FieldPathError';
}

const NAME = /^[^.[\]'"*\s]+/;

export function parseFieldPath(path: string): PathSegment[] {
  if (typeof path !== 'string' || path.length === 0 || path.length > 1024) throw new FieldPathError('field path must be a non-empty string');
  let rest = path.startsWith('$') ? path.slice(1) : path.startsWith('.') || path.startsWith('[') ? path : `.${path}`;
  const segments: PathSegment[] = [];
  while (rest.length > 0) {
    if (rest.startsWith('..')) throw new FieldPathError(`recursive descent is not supported: ${path}`);
    if (rest.startsWith('.*')) {
      segments.push({ kind: 'wildcard' });
      rest = rest.slice(2);
      continue;
    }
    if (rest.startsWith('.')) {
      const m = NAME.exec(rest.slice(1));
      if (!m) throw new FieldPathError(`expected a member name after "." in ${path}`);
      segments.push({ kind: 'key', key: m[0] });
      rest = rest.slice(1 + m[0].length);
      continue;
    }
    const bracket = /^\[(?:(\*)|(0|[1-9]\d{0,8})|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]/.exec(rest);
    if (!bracket) throw new FieldPathError(`cannot parse field path ${path}`);
    if (bracket[1]) segments.push({ kind: 'wildcard' });
    else if (bracket[2] !== undefined) segments.push({ kind: 'index', index: Number(bracket[2]) });
    else segments.push({ kind: 'key', key: (bracket[3] ?? bracket[4]!).replace(/\\(.)/g, '$1') });
    rest = rest.slice(bracket[0].length);
  }
  if (segments.length === 0) throw new FieldPathError(`field path ${path} names the whole document; name a field`);
  return segments;
}

export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function pointerOf(tokens: readonly (string | number)[]): string {
  return tokens.map((t) => `/${escapePointerToken(String(t))}`).join('');
}

export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new FieldPathError(`not a JSON Pointer: ${pointer}`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

export interface Selected {
  tokens: (string | number)[];
  value: unknown;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every node the path names that exists in `doc` (absent members and indices are skipped). */
export function selectPath(doc: unknown, segments: readonly PathSegment[]): Selected[] {
  let frontier: Selected[] = [{ tokens: [], value: doc }];
  for (const seg of segments) {
    const next: Selected[] = [];
    for (const node of frontier) {
      const v = node.value;
      if (seg.kind === 'wildcard') {
        if (Array.isArray(v)) v.forEach((el, i) => next.push({ tokens: [...node.tokens, i], value: el }));
        else if (isObject(v)) for (const k of Object.keys(v)) next.push({ tokens: [...node.tokens, k], value: v[k] });
      } else if (seg.kind === 'index') {
        if (Array.isArray(v) && seg.index < v.length) next.push({ tokens: [...node.tokens, seg.index], value: v[seg.index] });
      } else if (isObject(v) && Object.prototype.hasOwnProperty.call(v, seg.key)) {
        next.push({ tokens: [...node.tokens, seg.key], value: v[seg.key] });
      }
    }
    frontier = next;
  }
  return frontier;
}

/** Resolves a JSON Pointer against a document made of plain JSON; undefined when absent. */
export function getAtPointer(doc: unknown, tokens: readonly string[]): { parent: Record<string, unknown> | unknown[]; key: string | number } | undefined {
  let cur: unknown = doc;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const last = i === tokens.length - 1;
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9]\d*)$/.test(t)) return undefined;
      const idx = Number(t);
      if (idx >= cur.length) return undefined;
      if (last) return { parent: cur, key: idx };
      cur = cur[idx];
    } else if (isObject(cur)) {
      if (!Object.prototype.hasOwnProperty.call(cur, t)) return undefined;
      if (last) return { parent: cur, key: t };
      cur = cur[t];
    } else {
      return undefined;
    }
  }
  return undefined;
}
