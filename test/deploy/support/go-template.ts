import { createHash } from 'node:crypto';
import { stringify } from 'yaml';

/**
 * A deliberately small Go text/template engine with the Helm (Sprig) functions the mesh-pep chart uses, so
 * the tests can render the chart's templates and validate the objects Helm would produce. No Helm binary
 * can be installed on the machines that run these tests.
 *
 * It implements exactly: text with `{{- -}}` trimming; comments; `if`/`else if`/`else`/`end`; `range`
 * (lists and maps, optional `$i, $v :=`); `with`/`else`; `define`; variables (`$x := …`, `$`); field
 * chains on `.`, `$` and variables; pipelines with `|`; parenthesised sub-expressions; string, number and
 * boolean literals; and the functions in FUNCTIONS below. Anything else throws a TemplateError naming
 * the template and construct, so a chart change that needs more of Go templates fails the tests loudly
 * instead of being rendered wrongly.
 */

export class TemplateError extends Error {
  constructor(message: string, readonly template: string) {
    super(`${template}: ${message}`);
    this.name = 'TemplateError';
  }
}

type Value = unknown;

// ---- lexing --------------------------------------------------------------------------------------

type Chunk = { kind: 'text'; text: string } | { kind: 'action'; body: string };

function chunks(src: string, template: string): Chunk[] {
  const out: Chunk[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos < src.length) {
    const open = src.indexOf('{{', pos);
    let text = open === -1 ? src.slice(pos) : src.slice(pos, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open === -1) {
      out.push({ kind: 'text', text });
      break;
    }
    const close = src.indexOf('}}', open + 2);
    if (close === -1) throw new TemplateError('unclosed action "{{"', template);
    let body = src.slice(open + 2, close);
    if (/^-\s/.test(body)) {
      text = text.replace(/\s+$/, '');
      body = body.slice(1);
    }
    if (/\s-$/.test(body)) {
      trimNext = true;
      body = body.slice(0, -1);
    }
    out.push({ kind: 'text', text });
    body = body.trim();
    if (!(body.startsWith('/*') && body.endsWith('*/'))) out.push({ kind: 'action', body });
    pos = close + 2;
  }
  return out.filter((c) => c.kind === 'action' || c.text !== '');
}

type Token =
  | { t: 'field'; base: 'dot' | 'root' | 'var'; name?: string; path: string[] }
  | { t: 'ident'; name: string }
  | { t: 'string'; value: string }
  | { t: 'number'; value: number }
  | { t: 'bool'; value: boolean }
  | { t: 'pipe' }
  | { t: 'open' }
  | { t: 'close' }
  | { t: 'declare' }
  | { t: 'comma' };

function tokens(body: string, template: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const fieldPath = (): string[] => {
    const path: string[] = [];
    while (body[i] === '.' && /[A-Za-z_]/.test(body[i + 1] ?? '')) {
      i++;
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(i));
      if (!m) break;
      path.push(m[0]);
      i += m[0].length;
    }
    return path;
  };
  while (i < body.length) {
    const c = body[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '|') { out.push({ t: 'pipe' }); i++; continue; }
    if (c === '(') { out.push({ t: 'open' }); i++; continue; }
    if (c === ')') { out.push({ t: 'close' }); i++; continue; }
    if (c === ',') { out.push({ t: 'comma' }); i++; continue; }
    if (body.startsWith(':=', i)) { out.push({ t: 'declare' }); i += 2; continue; }
    if (c === '"') {
      const m = /^"(?:[^"\\]|\\.)*"/.exec(body.slice(i));
      if (!m) throw new TemplateError(`unterminated string in {{${body}}}`, template);
      out.push({ t: 'string', value: JSON.parse(m[0]) as string });
      i += m[0].length;
      continue;
    }
    if (c === '`') {
      const end = body.indexOf('`', i + 1);
      if (end === -1) throw new TemplateError(`unterminated raw string in {{${body}}}`, template);
      out.push({ t: 'string', value: body.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    if (c === '.') {
      const path = fieldPath();
      if (path.length === 0) i++; // a lone "." is the current context
      out.push({ t: 'field', base: 'dot', path });
      continue;
    }
    if (c === '$') {
      i++;
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(i));
      if (m) i += m[0].length;
      const path = fieldPath();
      out.push(m ? { t: 'field', base: 'var', name: m[0], path } : { t: 'field', base: 'root', path });
      continue;
    }
    const num = /^-?\d+(\.\d+)?/.exec(body.slice(i));
    if (num) { out.push({ t: 'number', value: Number(num[0]) }); i += num[0].length; continue; }
    const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(i));
    if (id) {
      if (id[0] === 'true' || id[0] === 'false') out.push({ t: 'bool', value: id[0] === 'true' });
      else out.push({ t: 'ident', name: id[0] });
      i += id[0].length;
      continue;
    }
    throw new TemplateError(`unsupported syntax "${body.slice(i)}" in {{${body}}}`, template);
  }
  return out;
}

// ---- parsing -------------------------------------------------------------------------------------

type Operand = Token | { t: 'sub'; pipeline: Pipeline };
interface Command { operands: Operand[] }
interface Pipeline { declare: string[]; commands: Command[] }

type Node =
  | { n: 'text'; text: string }
  | { n: 'output'; pipeline: Pipeline }
  | { n: 'if'; branches: { cond: Pipeline; body: Node[] }[]; otherwise: Node[] }
  | { n: 'range'; pipeline: Pipeline; body: Node[]; otherwise: Node[] }
  | { n: 'with'; pipeline: Pipeline; body: Node[]; otherwise: Node[] };

function parsePipeline(toks: Token[], template: string, source: string): Pipeline {
  let pos = 0;
  const declare: string[] = [];
  // `$a := …` or `$i, $v := …`
  const declIdx = toks.findIndex((t) => t.t === 'declare');
  if (declIdx !== -1) {
    for (const t of toks.slice(0, declIdx)) {
      if (t.t === 'comma') continue;
      if (t.t !== 'field' || t.base !== 'var' || t.path.length > 0 || !t.name) {
        throw new TemplateError(`bad variable declaration in {{${source}}}`, template);
      }
      declare.push(t.name);
    }
    pos = declIdx + 1;
  }
  const parse = (stopAtClose: boolean): Command[] => {
    const commands: Command[] = [{ operands: [] }];
    while (pos < toks.length) {
      const t = toks[pos++];
      if (t.t === 'close') {
        if (!stopAtClose) throw new TemplateError(`unbalanced ")" in {{${source}}}`, template);
        return commands;
      }
      if (t.t === 'pipe') { commands.push({ operands: [] }); continue; }
      if (t.t === 'open') {
        commands[commands.length - 1].operands.push({ t: 'sub', pipeline: { declare: [], commands: parse(true) } });
        continue;
      }
      if (t.t === 'declare' || t.t === 'comma') throw new TemplateError(`unexpected token in {{${source}}}`, template);
      commands[commands.length - 1].operands.push(t);
    }
    if (stopAtClose) throw new TemplateError(`missing ")" in {{${source}}}`, template);
    return commands;
  };
  const commands = parse(false);
  if (commands.some((c) => c.operands.length === 0)) throw new TemplateError(`empty command in {{${source}}}`, template);
  return { declare, commands };
}

interface Parsed { nodes: Node[]; defines: Map<string, Node[]> }

function parse(src: string, template: string): Parsed {
  const list = chunks(src, template);
  const defines = new Map<string, Node[]>();
  let pos = 0;
  const keyword = (body: string): [string, string] => {
    const m = /^(if|else if|else|end|range|with|define|template|block|break|continue)\b\s*(.*)$/s.exec(body);
    return m ? [m[1], m[2]] : ['', body];
  };
  // Parses until an `end`/`else` that belongs to the caller; returns the nodes and the terminator.
  const block = (): { nodes: Node[]; end: string; rest: string } => {
    const nodes: Node[] = [];
    while (pos < list.length) {
      const c = list[pos++];
      if (c.kind === 'text') { nodes.push({ n: 'text', text: c.text }); continue; }
      const [kw, rest] = keyword(c.body);
      const pipe = (): Pipeline => parsePipeline(tokens(rest, template), template, c.body);
      switch (kw) {
        case '':
          nodes.push({ n: 'output', pipeline: pipe() });
          break;
        case 'end':
        case 'else':
        case 'else if':
          return { nodes, end: kw, rest };
        case 'if': {
          const branches = [{ cond: pipe(), body: [] as Node[] }];
          let otherwise: Node[] = [];
          for (;;) {
            const inner = block();
            if (inner.end === 'else if') {
              branches[branches.length - 1].body = inner.nodes;
              branches.push({ cond: parsePipeline(tokens(inner.rest, template), template, inner.rest), body: [] });
              continue;
            }
            if (inner.end === 'else') {
              branches[branches.length - 1].body = inner.nodes;
              const tail = block();
              if (tail.end !== 'end') throw new TemplateError('"if … else" without "end"', template);
              otherwise = tail.nodes;
              break;
            }
            if (inner.end !== 'end') throw new TemplateError('"if" without "end"', template);
            branches[branches.length - 1].body = inner.nodes;
            break;
          }
          nodes.push({ n: 'if', branches, otherwise });
          break;
        }
        case 'range':
        case 'with': {
          const pipeline = pipe();
          const inner = block();
          let otherwise: Node[] = [];
          if (inner.end === 'else') {
            const tail = block();
            if (tail.end !== 'end') throw new TemplateError(`"${kw} … else" without "end"`, template);
            otherwise = tail.nodes;
          } else if (inner.end !== 'end') {
            throw new TemplateError(`"${kw}" without "end"`, template);
          }
          nodes.push({ n: kw, pipeline, body: inner.nodes, otherwise });
          break;
        }
        case 'define': {
          const name = /^"([^"]+)"$/.exec(rest.trim());
          if (!name) throw new TemplateError(`define needs a quoted name: {{${c.body}}}`, template);
          const inner = block();
          if (inner.end !== 'end') throw new TemplateError(`define "${name[1]}" without "end"`, template);
          defines.set(name[1], inner.nodes);
          break;
        }
        default:
          throw new TemplateError(`unsupported action "${kw}" in {{${c.body}}}`, template);
      }
    }
    return { nodes, end: '', rest: '' };
  };
  const top = block();
  if (top.end !== '') throw new TemplateError(`unexpected "${top.end}"`, template);
  return { nodes: top.nodes, defines };
}

// ---- evaluation ----------------------------------------------------------------------------------

function truthy(v: Value): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

function print(v: Value, template: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new TemplateError('printing a map or list directly; use toYaml', template);
}

function toYaml(v: Value): string {
  if (v === undefined || v === null) return 'null';
  // Helm's toYaml: keys sorted (it goes through JSON), no line folding, trailing newline trimmed.
  return stringify(v, { sortMapEntries: true, lineWidth: 0, minContentWidth: 0 }).replace(/\n$/, '');
}

function indentLines(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return s.split('\n').map((line) => pad + line).join('\n');
}

function sprintf(format: string, args: Value[], template: string): string {
  let i = 0;
  return format.replace(/%([svdq%])/g, (_m, verb: string) => {
    if (verb === '%') return '%';
    if (i >= args.length) throw new TemplateError(`printf "${format}": missing argument`, template);
    const arg = args[i++];
    if (verb === 'q') return JSON.stringify(print(arg, template));
    if (verb === 'd' && !Number.isInteger(arg)) throw new TemplateError(`printf %d of a non-integer`, template);
    return print(arg, template);
  });
}

type Fn = (args: Value[], engine: Engine, template: string) => Value;

function arity(name: string, args: Value[], n: number, template: string): void {
  if (args.length !== n) throw new TemplateError(`${name} takes ${n} argument(s), got ${args.length}`, template);
}

function str(v: Value, name: string, template: string): string {
  if (typeof v !== 'string') throw new TemplateError(`${name} expects a string, got ${typeof v}`, template);
  return v;
}

function int(v: Value, name: string, template: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TemplateError(`${name} expects an integer`, template);
  return v;
}

const FUNCTIONS: Record<string, Fn> = {
  include: (a, e, t) => { arity('include', a, 2, t); return e.execute(str(a[0], 'include', t), a[1]); },
  toYaml: (a, _e, t) => { arity('toYaml', a, 1, t); return toYaml(a[0]); },
  toJson: (a, _e, t) => { arity('toJson', a, 1, t); return JSON.stringify(a[0] ?? null); },
  nindent: (a, _e, t) => { arity('nindent', a, 2, t); return '\n' + indentLines(int(a[0], 'nindent', t), print(a[1], t)); },
  indent: (a, _e, t) => { arity('indent', a, 2, t); return indentLines(int(a[0], 'indent', t), print(a[1], t)); },
  quote: (a, _e, t) => a.map((v) => JSON.stringify(print(v, t))).join(' '),
  default: (a, _e, t) => { arity('default', a, 2, t); return truthy(a[1]) ? a[1] : a[0]; },
  required: (a, _e, t) => {
    arity('required', a, 2, t);
    if (a[1] === undefined || a[1] === null || a[1] === '') throw new TemplateError(str(a[0], 'required', t), t);
    return a[1];
  },
  sha256sum: (a, _e, t) => { arity('sha256sum', a, 1, t); return createHash('sha256').update(print(a[0], t)).digest('hex'); },
  printf: (a, _e, t) => sprintf(str(a[0], 'printf', t), a.slice(1), t),
  print: (a, _e, t) => a.map((v) => print(v, t)).join(''),
  trunc: (a, _e, t) => { arity('trunc', a, 2, t); return str(a[1], 'trunc', t).slice(0, int(a[0], 'trunc', t)); },
  trimSuffix: (a, _e, t) => {
    arity('trimSuffix', a, 2, t);
    const [suffix, s] = [str(a[0], 'trimSuffix', t), str(a[1], 'trimSuffix', t)];
    return suffix !== '' && s.endsWith(suffix) ? s.slice(0, -suffix.length) : s;
  },
  contains: (a, _e, t) => { arity('contains', a, 2, t); return str(a[1], 'contains', t).includes(str(a[0], 'contains', t)); },
  eq: (a, _e, t) => { if (a.length < 2) throw new TemplateError('eq needs 2+ arguments', t); return a.slice(1).some((v) => v === a[0]); },
  ne: (a, _e, t) => { arity('ne', a, 2, t); return a[0] !== a[1]; },
  not: (a, _e, t) => { arity('not', a, 1, t); return !truthy(a[0]); },
  and: (a) => a.find((v) => !truthy(v)) ?? a[a.length - 1],
  or: (a) => a.find((v) => truthy(v)) ?? a[a.length - 1],
};

interface Scope { dot: Value; root: Value; vars: Map<string, Value>[] }

class Engine {
  private readonly defines = new Map<string, { nodes: Node[]; file: string }>();
  private readonly files = new Map<string, Node[]>();
  private depth = 0;

  add(file: string, src: string): void {
    const parsed = parse(src, file);
    this.files.set(file, parsed.nodes);
    for (const [name, nodes] of parsed.defines) {
      if (this.defines.has(name)) throw new TemplateError(`template "${name}" defined twice`, file);
      this.defines.set(name, { nodes, file });
    }
  }

  /** Renders a named `define` (what `include` calls). */
  execute(name: string, data: Value): string {
    const def = this.defines.get(name);
    if (!def) throw new TemplateError(`no template named "${name}"`, name);
    return this.run(def.nodes, data, def.file);
  }

  renderFile(file: string, data: Value): string {
    const nodes = this.files.get(file);
    if (!nodes) throw new TemplateError('no such file', file);
    return this.run(nodes, data, file);
  }

  private run(nodes: Node[], data: Value, file: string): string {
    if (++this.depth > 50) throw new TemplateError('template recursion too deep', file);
    try {
      return this.nodes(nodes, { dot: data, root: data, vars: [new Map()] }, file);
    } finally {
      this.depth--;
    }
  }

  private nodes(list: Node[], scope: Scope, file: string): string {
    let out = '';
    for (const node of list) out += this.node(node, scope, file);
    return out;
  }

  private child(scope: Scope, dot: Value): Scope {
    return { dot, root: scope.root, vars: [...scope.vars, new Map()] };
  }

  private node(node: Node, scope: Scope, file: string): string {
    switch (node.n) {
      case 'text':
        return node.text;
      case 'output': {
        const v = this.pipeline(node.pipeline, scope, file);
        return node.pipeline.declare.length > 0 ? '' : print(v, file);
      }
      case 'if': {
        for (const branch of node.branches) {
          if (truthy(this.pipeline(branch.cond, scope, file))) return this.nodes(branch.body, this.child(scope, scope.dot), file);
        }
        return this.nodes(node.otherwise, this.child(scope, scope.dot), file);
      }
      case 'with': {
        const v = this.pipeline({ ...node.pipeline, declare: [] }, scope, file);
        if (!truthy(v)) return this.nodes(node.otherwise, this.child(scope, scope.dot), file);
        const inner = this.child(scope, v);
        if (node.pipeline.declare[0]) inner.vars[inner.vars.length - 1].set(node.pipeline.declare[0], v);
        return this.nodes(node.body, inner, file);
      }
      case 'range': {
        const v = this.pipeline({ ...node.pipeline, declare: [] }, scope, file);
        let entries: [Value, Value][];
        if (v === undefined || v === null) entries = [];
        else if (Array.isArray(v)) entries = v.map((x, i) => [i, x]);
        else if (typeof v === 'object') entries = Object.keys(v).sort().map((k) => [k, (v as Record<string, Value>)[k]]);
        else if (typeof v === 'number' && Number.isInteger(v)) entries = Array.from({ length: v }, (_x, i) => [i, i]);
        else throw new TemplateError('range over a value that is not a list or map', file);
        if (entries.length === 0) return this.nodes(node.otherwise, this.child(scope, scope.dot), file);
        const [first, second] = node.pipeline.declare;
        let out = '';
        for (const [key, item] of entries) {
          const inner = this.child(scope, item);
          const vars = inner.vars[inner.vars.length - 1];
          if (second) { vars.set(first, key); vars.set(second, item); } else if (first) vars.set(first, item);
          out += this.nodes(node.body, inner, file);
        }
        return out;
      }
    }
  }

  private pipeline(p: Pipeline, scope: Scope, file: string): Value {
    let value: Value = undefined;
    p.commands.forEach((cmd, i) => {
      value = this.command(cmd, scope, file, i === 0 ? [] : [value]);
    });
    if (p.declare.length === 1) scope.vars[scope.vars.length - 1].set(p.declare[0], value);
    else if (p.declare.length > 1) throw new TemplateError('two variables outside range', file);
    return value;
  }

  private command(cmd: Command, scope: Scope, file: string, piped: Value[]): Value {
    const [head, ...rest] = cmd.operands;
    if (head.t === 'ident') {
      const fn = FUNCTIONS[head.name];
      if (!fn) throw new TemplateError(`unsupported function "${head.name}"`, file);
      return fn([...rest.map((o) => this.operand(o, scope, file)), ...piped], this, file);
    }
    if (rest.length > 0 || piped.length > 0) throw new TemplateError('a value cannot take arguments', file);
    return this.operand(head, scope, file);
  }

  private operand(o: Operand, scope: Scope, file: string): Value {
    switch (o.t) {
      case 'string':
      case 'number':
      case 'bool':
        return o.value;
      case 'sub':
        return this.pipeline(o.pipeline, scope, file);
      case 'field': {
        let base: Value;
        if (o.base === 'dot') base = scope.dot;
        else if (o.base === 'root') base = scope.root;
        else {
          const frame = [...scope.vars].reverse().find((m) => m.has(o.name ?? ''));
          if (!frame) throw new TemplateError(`undefined variable $${o.name ?? ''}`, file);
          base = frame.get(o.name ?? '');
        }
        return this.walk(base, o.path, file);
      }
      case 'ident':
        throw new TemplateError(`function "${o.name}" used as a value; wrap it in ( )`, file);
      default:
        throw new TemplateError(`unexpected "${o.t}"`, file);
    }
  }

  private walk(base: Value, path: string[], file: string): Value {
    let v = base;
    path.forEach((key, i) => {
      if (v === undefined || v === null) {
        // Go templates fail here too ("nil pointer evaluating interface {}.key").
        throw new TemplateError(`nil pointer evaluating .${path.slice(0, i + 1).join('.')}`, file);
      }
      if (typeof v !== 'object' || Array.isArray(v)) throw new TemplateError(`.${key} of a non-map`, file);
      v = (v as Record<string, Value>)[key];
    });
    return v;
  }
}

/** A set of templates that see each other's `define`s, like the files of one Helm chart. */
export class TemplateSet {
  private readonly engine = new Engine();

  add(file: string, source: string): this {
    this.engine.add(file, source);
    return this;
  }

  render(file: string, data: Value): string {
    return this.engine.renderFile(file, data);
  }

  include(name: string, data: Value): string {
    return this.engine.execute(name, data);
  }
}
