import { isMap, isScalar, isSeq, type LineCounter, type Node } from 'yaml';
import type { ConfigProblem } from '../errors.js';

/**
 * A small declarative schema checked directly on the YAML syntax tree, so every problem points at the
 * `line:col` of the offending key or value. The output is plain data; positions of every path are kept
 * for the semantic checks that follow.
 */
export type FieldSchema =
  | { kind: 'string'; enum?: readonly string[]; pattern?: RegExp; patternHint?: string; nonEmpty?: boolean }
  | { kind: 'integer'; min?: number; max?: number }
  | { kind: 'number'; min?: number }
  | { kind: 'boolean' }
  | { kind: 'array'; of: FieldSchema; nonEmpty?: boolean }
  | { kind: 'object'; fields: Readonly<Record<string, FieldSchema>>; required?: readonly string[] }
  /** A mapping whose keys are names the operator chooses (argument names, methods), each value `of`. */
  | { kind: 'map'; of: FieldSchema; keyPattern?: RegExp; keyHint?: string }
  /** A string, number or boolean (enum values). */
  | { kind: 'scalar' };

export type Plain = string | number | boolean | null | Plain[] | { [k: string]: Plain };

export interface Position {
  line: number;
  col: number;
}

export class SchemaWalker {
  readonly problems: ConfigProblem[] = [];
  readonly positions = new Map<string, Position>();
  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  pos(node: Node | null | undefined): Position {
    const offset = node?.range?.[0] ?? 0;
    return this.lines.linePos(offset);
  }

  error(at: Position, message: string): void {
    this.problems.push({ file: this.file, line: at.line, col: at.col, message, severity: 'error' });
  }

  warn(at: Position, message: string): void {
    this.problems.push({ file: this.file, line: at.line, col: at.col, message, severity: 'warning' });
  }

  /** Position of a dotted path (`security_mesh.domains[1].tier`), or 1:1 when unknown. */
  at(path: string): Position {
    return this.positions.get(path) ?? { line: 1, col: 1 };
  }

  walk(node: Node | null | undefined, schema: FieldSchema, path: string): Plain | undefined {
    this.positions.set(path, this.pos(node));
    const where = this.pos(node);
    const label = path || 'document';
    if (node === null || node === undefined || (isScalar(node) && node.value === null)) {
      this.error(where, `${label}: a value is required`);
      return undefined;
    }
    switch (schema.kind) {
      case 'object': {
        if (!isMap(node)) {
          this.error(where, `${label}: expected a mapping`);
          return undefined;
        }
        const out: Record<string, Plain> = {};
        for (const pair of node.items) {
          const keyNode = pair.key as Node | null;
          const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
          const keyPos = this.pos(keyNode);
          if (key === undefined) {
            this.error(keyPos, `${label}: keys must be plain strings`);
            continue;
          }
          const childPath = path ? `${path}.${key}` : key;
          const fieldSchema = schema.fields[key];
          if (!fieldSchema) {
            const known = Object.keys(schema.fields).join(', ');
            this.error(keyPos, `${childPath}: unknown key "${key}" (expected one of: ${known})`);
            continue;
          }
          if (Object.prototype.hasOwnProperty.call(out, key)) {
            this.error(keyPos, `${childPath}: duplicate key "${key}"`);
            continue;
          }
          this.positions.set(`${childPath}#key`, keyPos);
          const value = this.walk(pair.value as Node | null, fieldSchema, childPath);
          if (value !== undefined) out[key] = value;
        }
        for (const req of schema.required ?? []) {
          if (!(req in out) && !node.items.some((p) => isScalar(p.key) && p.key.value === req)) {
            this.error(where, `${label}: missing required key "${req}"`);
          }
        }
        return out;
      }
      case 'map': {
        if (!isMap(node)) {
          this.error(where, `${label}: expected a mapping`);
          return undefined;
        }
        const out: Record<string, Plain> = {};
        for (const pair of node.items) {
          const keyNode = pair.key as Node | null;
          const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
          const keyPos = this.pos(keyNode);
          if (key === undefined || key === '') {
            this.error(keyPos, `${label}: keys must be non-empty plain strings`);
            continue;
          }
          const childPath = `${path}.${key}`;
          if (schema.keyPattern && !schema.keyPattern.test(key)) {
            this.error(keyPos, `${childPath}: "${key}" ${schema.keyHint ?? `does not match ${schema.keyPattern}`}`);
            continue;
          }
          if (Object.prototype.hasOwnProperty.call(out, key)) {
            this.error(keyPos, `${childPath}: duplicate key "${key}"`);
            continue;
          }
          this.positions.set(`${childPath}#key`, keyPos);
          const value = this.walk(pair.value as Node | null, schema.of, childPath);
          // defineProperty: an operator's key named "__proto__" is a key, not the object's prototype.
          if (value !== undefined) Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
        }
        return out;
      }
      case 'array': {
        if (!isSeq(node)) {
          this.error(where, `${label}: expected a list`);
          return undefined;
        }
        if (schema.nonEmpty && node.items.length === 0) this.error(where, `${label}: must not be empty`);
        const out: Plain[] = [];
        node.items.forEach((item, i) => {
          const v = this.walk(item as Node | null, schema.of, `${path}[${i}]`);
          if (v !== undefined) out.push(v);
        });
        return out;
      }
      default:
        return this.scalar(node, schema, label, where);
    }
  }

  private scalar(node: Node, schema: FieldSchema, label: string, where: Position): Plain | undefined {
    if (!isScalar(node)) {
      this.error(where, `${label}: expected a ${schema.kind}`);
      return undefined;
    }
    const v = node.value;
    switch (schema.kind) {
      case 'scalar':
        if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return v;
        this.error(where, `${label}: expected a string, a number or true/false`);
        return undefined;
      case 'string': {
        // Quoted or plain scalars both count; numbers such as `1.3` are accepted as their source text.
        const s = typeof v === 'string' ? v : typeof v === 'number' ? (node.source ?? String(v)) : undefined;
        if (s === undefined) {
          this.error(where, `${label}: expected a string`);
          return undefined;
        }
        if (schema.nonEmpty && s.trim() === '') {
          this.error(where, `${label}: must not be empty`);
          return undefined;
        }
        if (schema.enum && !schema.enum.includes(s)) {
          this.error(where, `${label}: "${s}" is not one of ${schema.enum.join(' | ')}`);
          return undefined;
        }
        if (schema.pattern && !schema.pattern.test(s)) {
          this.error(where, `${label}: "${s}" ${schema.patternHint ?? `does not match ${schema.pattern}`}`);
          return undefined;
        }
        return s;
      }
      case 'integer':
      case 'number': {
        if (typeof v !== 'number' || !Number.isFinite(v)) {
          this.error(where, `${label}: expected a ${schema.kind}`);
          return undefined;
        }
        if (schema.kind === 'integer' && !Number.isInteger(v)) {
          this.error(where, `${label}: expected a whole number`);
          return undefined;
        }
        if (schema.min !== undefined && v < schema.min) {
          this.error(where, `${label}: must be at least ${schema.min}`);
          return undefined;
        }
        if (schema.kind === 'integer' && schema.max !== undefined && v > schema.max) {
          this.error(where, `${label}: must be at most ${schema.max}`);
          return undefined;
        }
        return v;
      }
      case 'boolean':
        if (typeof v !== 'boolean') {
          this.error(where, `${label}: expected true or false`);
          return undefined;
        }
        return v;
    }
    return undefined;
  }
}
