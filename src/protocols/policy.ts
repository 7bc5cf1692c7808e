import { compileArgumentCheck, compilePattern, type ArgumentCheck, type RawArgumentConstraint } from './arguments.js';
import { compileGlob, type NameGlob } from './glob.js';

/** A domain's `mcp` and `a2a` sections as written (after schema validation). */
export interface RawToolRule {
  name: string;
  roles: string[];
  arguments?: Record<string, RawArgumentConstraint>;
  required?: string[];
}

export interface RawMcp {
  methods?: string[];
  tools?: RawToolRule[];
}

export interface RawA2a {
  methods?: Record<string, string[]>;
  /** Origin (`https://host[:port]`) that replaces internal origins in agent cards of masking domains. */
  external_url?: string;
}

export interface ToolRule {
  readonly glob: NameGlob;
  readonly roles: ReadonlySet<string>;
  readonly arguments: ReadonlyMap<string, ArgumentCheck>;
  readonly required: readonly string[];
}

export interface McpPolicy {
  /** Absent: any method. */
  readonly methods: ReadonlySet<string> | undefined;
  /** Absent: every tool for every allowed role. Tried in order; the first whose name matches decides. */
  readonly tools: readonly ToolRule[] | undefined;
}

export interface A2aPolicy {
  /** Method → roles allowed to call it; absent: any method. */
  readonly methods: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  readonly externalOrigin: string | undefined;
}

/** What a domain says about agent protocols, compiled once per policy load. */
export type ProtocolPolicy =
  | { readonly protocol: 'mcp'; readonly mcp: McpPolicy }
  | { readonly protocol: 'a2a'; readonly a2a: A2aPolicy };

export function compileProtocolPolicy(mcp: RawMcp | undefined, a2a: RawA2a | undefined): ProtocolPolicy | undefined {
  if (mcp) {
    return {
      protocol: 'mcp',
      mcp: {
        methods: mcp.methods ? new Set(mcp.methods) : undefined,
        tools: mcp.tools?.map((t) => ({
          glob: compileGlob(t.name),
          roles: new Set(t.roles),
          arguments: new Map(Object.entries(t.arguments ?? {}).map(([k, c]) => [k, compileArgumentCheck(c)])),
          required: [...(t.required ?? [])],
        })),
      },
    };
  }
  if (a2a) {
    return {
      protocol: 'a2a',
      a2a: {
        methods: a2a.methods ? new Map(Object.entries(a2a.methods).map(([m, roles]) => [m, new Set(roles)])) : undefined,
        externalOrigin: a2a.external_url ? new URL(a2a.external_url).origin : undefined,
      },
    };
  }
  return undefined;
}

export interface ProtocolProblem {
  /** Dotted path below the domain (`mcp.tools[2].arguments.amount.pattern`), for the line:col. */
  path: string;
  message: string;
  severity: 'error' | 'warning';
}

/** Rules the schema cannot express; every problem names the path it is about. */
export function protocolProblems(mcp: RawMcp | undefined, a2a: RawA2a | undefined, allowedRoles: readonly string[]): ProtocolProblem[] {
  const out: ProtocolProblem[] = [];
  const roles = new Set(allowedRoles);
  if (mcp && a2a) out.push({ path: 'a2a#key', message: 'a domain speaks one agent protocol: set mcp or a2a, not both (split them by match.path_prefixes)', severity: 'error' });
  const warnRoles = (list: readonly string[] | undefined, at: string) =>
    list?.forEach((r, j) => {
      if (!roles.has(r)) out.push({ path: `${at}[${j}]`, message: `role "${r}" is not in the domain's allowed_roles, so this entry never applies`, severity: 'warning' });
    });
  mcp?.tools?.forEach((t, i) => {
    const at = `mcp.tools[${i}]`;
    warnRoles(t.roles, `${at}.roles`);
    for (const [name, c] of Object.entries(t.arguments ?? {})) {
      const cat = `${at}.arguments.${name}`;
      if (c.pattern !== undefined) {
        const re = compilePattern(c.pattern);
        if (typeof re === 'string') out.push({ path: `${cat}.pattern`, message: `not a linear-time (RE2) regular expression: ${re}`, severity: 'error' });
      }
      if (c.min !== undefined && c.max !== undefined && c.min > c.max) out.push({ path: `${cat}.min`, message: 'min is greater than max', severity: 'error' });
      if (c.min_length !== undefined && c.max_length !== undefined && c.min_length > c.max_length) {
        out.push({ path: `${cat}.min_length`, message: 'min_length is greater than max_length', severity: 'error' });
      }
    }
    t.required?.forEach((r, j) => {
      if (t.required!.indexOf(r) !== j) out.push({ path: `${at}.required[${j}]`, message: `duplicate required argument "${r}"`, severity: 'error' });
    });
    const first = mcp.tools!.findIndex((o) => o.name === t.name);
    if (first !== i) out.push({ path: `${at}.name`, message: `tool rule "${t.name}" repeats mcp.tools[${first}]; the first rule that matches decides, so this one never applies`, severity: 'error' });
  });
  if (mcp?.tools && mcp.methods && !mcp.methods.includes('tools/call')) {
    out.push({ path: 'mcp.methods#key', message: 'tools are listed but tools/call is not an allowed method, so no tool can be called', severity: 'warning' });
  }
  if (a2a?.methods) for (const [m, list] of Object.entries(a2a.methods)) warnRoles(list, `a2a.methods.${m}`);
  if (a2a?.external_url !== undefined) {
    let ok = false;
    try {
      const u = new URL(a2a.external_url);
      ok = (u.protocol === 'https:' || u.protocol === 'http:') && (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash && !u.username;
    } catch {
      ok = false;
    }
    if (!ok) out.push({ path: 'a2a.external_url', message: 'must be an origin: http(s)://host[:port] with no path, query or credentials', severity: 'error' });
  }
  return out;
}
