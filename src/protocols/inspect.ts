import { parseStrictJsonBytes, JsonRejected } from './json.js';
import { denialBody, parseRpcBody, rpcOf, RpcRejected, serializeMessage, type RpcBody, type RpcDenyReason, type RpcMessage } from './jsonrpc.js';
import type { A2aPolicy, McpPolicy, ProtocolPolicy, ToolRule } from './policy.js';
import { rewriteEventStream } from './sse.js';

/**
 * The agent-protocol step of a request body and of its answer, free of Envoy types: what each
 * JSON-RPC message calls, whether the caller's role may, and how the answer must be filtered. Used by
 * ext_proc (request and response bodies) and by Check (a body sent with `with_request_body`, or the
 * method and tool from Envoy's MCP filter).
 */

/** One message as audit, spans and metrics see it. Names only: never an argument value. */
export interface RpcCall {
  method: string;
  tool: string | undefined;
  /** Bounded label values (a client chooses names freely; metrics must not grow with them). */
  methodLabel: string;
  toolLabel: string;
  decision: 'allow' | 'deny';
}

/** What the answer to an allowed body needs (per exchange, for the caller's role). */
export interface ResponseFilter {
  /** Which listed tools the caller may see; set when the body asked for `tools/list` and some are hidden. */
  tools?: (name: string) => boolean;
  /** Origin that replaces internal origins in an extended agent card (A2A, masking domains). */
  cardOrigin?: string;
}

export type RequestInspection =
  | { kind: 'allow'; calls: RpcCall[]; batch: boolean; filter: ResponseFilter | undefined }
  /** `reply` is the JSON-RPC error body (HTTP 200); undefined when only notifications were denied (403). */
  | { kind: 'deny'; reason: RpcDenyReason; calls: RpcCall[]; batch: boolean; reply: string | undefined }
  | { kind: 'reject'; reason: 'payload_rejected'; calls: RpcCall[]; batch: boolean };

/** The standard method names: label values as they are; anything else is counted as `other`. */
const KNOWN_METHODS = new Set([
  'initialize', 'ping', 'tools/list', 'tools/call', 'resources/list', 'resources/templates/list', 'resources/read',
  'resources/subscribe', 'resources/unsubscribe', 'prompts/list', 'prompts/get', 'completion/complete',
  'logging/setLevel', 'notifications/initialized', 'notifications/cancelled', 'notifications/progress',
  'notifications/roots/list_changed', 'elicitation/create', 'sampling/createMessage', 'roots/list',
  'message/send', 'message/stream', 'tasks/get', 'tasks/cancel', 'tasks/resubscribe',
  'tasks/pushNotificationConfig/set', 'tasks/pushNotificationConfig/get', 'tasks/pushNotificationConfig/list',
  'tasks/pushNotificationConfig/delete', 'agent/getAuthenticatedExtendedCard',
]);

const EXTENDED_CARD_METHODS = new Set(['agent/getAuthenticatedExtendedCard', 'agent/getExtendedAgentCard']);

function methodLabel(policy: ProtocolPolicy, method: string): string {
  if (KNOWN_METHODS.has(method)) return method;
  if (policy.protocol === 'mcp' && policy.mcp.methods?.has(method)) return method;
  if (policy.protocol === 'a2a' && policy.a2a.methods?.has(method)) return method;
  return 'other';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

type Verdict = { ok: true; rule?: ToolRule } | { ok: false; reason: RpcDenyReason; rule?: ToolRule };

function firstRule(rules: readonly ToolRule[], name: string): ToolRule | undefined {
  for (const r of rules) if (r.glob.matches(name)) return r;
  return undefined;
}

function argumentsOk(rule: ToolRule, args: unknown): boolean {
  if (args === undefined) args = {};
  if (!isObject(args)) return rule.arguments.size === 0 && rule.required.length === 0;
  for (const name of rule.required) if (!Object.hasOwn(args, name)) return false;
  for (const [name, check] of rule.arguments) {
    if (Object.hasOwn(args, name) && !check(args[name])) return false;
  }
  return true;
}

function checkMcp(p: McpPolicy, role: string | null, m: Exclude<RpcMessage, { kind: 'response' }>): Verdict {
  if (p.methods && !p.methods.has(m.method)) return { ok: false, reason: 'method_not_allowed' };
  if (m.method !== 'tools/call' || !p.tools) return { ok: true };
  const params = isObject(m.params) ? m.params : undefined;
  const name = params?.['name'];
  if (typeof name !== 'string') return { ok: false, reason: 'tool_not_allowed' };
  const rule = firstRule(p.tools, name);
  if (!rule || role === null || !rule.roles.has(role)) return { ok: false, reason: 'tool_not_allowed', ...(rule ? { rule } : {}) };
  if (!argumentsOk(rule, params?.['arguments'])) return { ok: false, reason: 'arguments_rejected', rule };
  return { ok: true, rule };
}

function checkA2a(p: A2aPolicy, role: string | null, m: Exclude<RpcMessage, { kind: 'response' }>): Verdict {
  if (!p.methods) return { ok: true };
  const roles = p.methods.get(m.method);
  return roles && role !== null && roles.has(role) ? { ok: true } : { ok: false, reason: 'method_not_allowed' };
}

function toolNameOf(m: RpcMessage): string | undefined {
  if (m.kind === 'response' || m.method !== 'tools/call' || !isObject(m.params)) return undefined;
  const n = m.params['name'];
  return typeof n === 'string' ? n.slice(0, 256) : undefined;
}

/** Which tools a role sees in `tools/list`; undefined when it sees every one. */
export function toolVisibility(p: McpPolicy, role: string | null): ((name: string) => boolean) | undefined {
  if (p.methods && !p.methods.has('tools/call')) return () => false;
  const rules = p.tools;
  if (!rules) return undefined;
  return (name) => {
    const rule = firstRule(rules, name);
    return rule !== undefined && role !== null && rule.roles.has(role);
  };
}

/**
 * Decides a request body. A batch with any denied element is denied whole, with the first denial's
 * reason; a body that is not JSON-RPC 2.0 (or has a duplicate key) is `payload_rejected`.
 */
export function inspectRequest(policy: ProtocolPolicy, role: string | null, body: Uint8Array, masking: boolean): RequestInspection {
  let rpc: RpcBody;
  try {
    rpc = parseRpcBody(body);
  } catch (e) {
    if (e instanceof RpcRejected) return { kind: 'reject', reason: 'payload_rejected', calls: [], batch: false };
    throw e;
  }
  return decideRpc(policy, role, rpc, masking);
}

export function decideRpc(policy: ProtocolPolicy, role: string | null, rpc: RpcBody, masking: boolean): RequestInspection {
  const calls: RpcCall[] = [];
  let denied: RpcDenyReason | undefined;
  let listsTools = false;
  let extendedCard = false;
  for (const m of rpc.messages) {
    if (m.kind === 'response') {
      // Answers to the server's own requests (sampling, elicitation): no method to authorize.
      calls.push({ method: '(response)', tool: undefined, methodLabel: '(response)', toolLabel: '', decision: 'allow' });
      continue;
    }
    const v = policy.protocol === 'mcp' ? checkMcp(policy.mcp, role, m) : checkA2a(policy.a2a, role, m);
    const tool = toolNameOf(m);
    const toolLabel = tool === undefined ? '' : v.rule ? v.rule.glob.source : 'unlisted';
    calls.push({ method: m.method, tool, methodLabel: methodLabel(policy, m.method), toolLabel, decision: v.ok ? 'allow' : 'deny' });
    if (!v.ok) denied ??= v.reason;
    if (m.method === 'tools/list') listsTools = true;
    if (EXTENDED_CARD_METHODS.has(m.method)) extendedCard = true;
  }
  if (denied) {
    for (const c of calls) c.decision = 'deny';
    return { kind: 'deny', reason: denied, calls, batch: rpc.batch, reply: denialBody(rpc, denied) };
  }
  let filter: ResponseFilter | undefined;
  if (listsTools && policy.protocol === 'mcp') {
    const tools = toolVisibility(policy.mcp, role);
    if (tools) filter = { tools };
  }
  if (extendedCard && masking && policy.protocol === 'a2a') filter = { ...filter, cardOrigin: policy.a2a.externalOrigin ?? '' };
  return { kind: 'allow', calls, batch: rpc.batch, filter };
}

/**
 * The method and tool from Envoy's MCP filter metadata (no arguments: those are checked in ext_proc).
 * `id` is the raw JSON of the request id when the filter recorded one.
 */
export function inspectMetadata(policy: ProtocolPolicy, role: string | null, meta: { method: string; tool: string | undefined; rawId: string | undefined }): RequestInspection {
  const params = meta.tool !== undefined ? { name: meta.tool } : undefined;
  const message: RpcMessage = meta.rawId !== undefined ? { kind: 'request', method: meta.method, params, rawId: meta.rawId } : { kind: 'notification', method: meta.method, params };
  const rpc: RpcBody = { batch: false, messages: [message], objects: [] };
  if (policy.protocol === 'mcp') {
    // The filter does not send arguments: judge method and tool, leave arguments to ext_proc.
    const v = checkMcp({ methods: policy.mcp.methods, tools: policy.mcp.tools?.map((r) => ({ ...r, arguments: new Map(), required: [] })) }, role, message);
    const tool = meta.tool;
    const call: RpcCall = {
      method: meta.method,
      tool,
      methodLabel: methodLabel(policy, meta.method),
      toolLabel: tool === undefined ? '' : v.rule ? v.rule.glob.source : 'unlisted',
      decision: v.ok ? 'allow' : 'deny',
    };
    return v.ok
      ? { kind: 'allow', calls: [call], batch: false, filter: undefined }
      : { kind: 'deny', reason: v.reason, calls: [call], batch: false, reply: denialBody(rpc, v.reason) };
  }
  return decideRpc(policy, role, rpc, false);
}

// --- answers ----------------------------------------------------------------------------------

function filterTools(result: Record<string, unknown>, visible: (name: string) => boolean): boolean {
  const tools = result['tools'];
  if (!Array.isArray(tools)) return false;
  const kept = tools.filter((t) => isObject(t) && typeof t['name'] === 'string' && visible(t['name']));
  if (kept.length === tools.length) return false;
  result['tools'] = kept;
  return true;
}

/** Replaces the origin of an absolute http(s) URL; anything else becomes the origin itself. */
function maskUrl(value: unknown, origin: string): unknown {
  if (typeof value !== 'string') return value;
  try {
    const u = new URL(value);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return origin;
    return `${origin}${u.pathname}${u.search}`;
  } catch {
    return origin;
  }
}

/** `url`, and the `url` of every `additionalInterfaces` (A2A ≤0.3) / `supportedInterfaces` (1.0) entry. */
export function maskAgentCard(card: unknown, origin: string): boolean {
  if (!isObject(card)) return false;
  let changed = false;
  const set = (o: Record<string, unknown>) => {
    if (!Object.hasOwn(o, 'url')) return;
    const next = maskUrl(o['url'], origin);
    if (next !== o['url']) {
      o['url'] = next;
      changed = true;
    }
  };
  set(card);
  for (const key of ['additionalInterfaces', 'supportedInterfaces']) {
    const list = card[key];
    if (Array.isArray(list)) for (const entry of list) if (isObject(entry)) set(entry);
  }
  return changed;
}

function applyToMessage(o: Record<string, unknown>, filter: ResponseFilter, requestOrigin: string): boolean {
  const result = o['result'];
  if (!isObject(result)) return false;
  let changed = false;
  if (filter.tools) changed = filterTools(result, filter.tools) || changed;
  if (filter.cardOrigin !== undefined) changed = maskAgentCard(result, filter.cardOrigin || requestOrigin) || changed;
  return changed;
}

/** Rewrites one JSON-RPC text (a message or a batch); undefined when nothing changed. Throws RpcRejected. */
function rewriteRpcText(text: string, filter: ResponseFilter, requestOrigin: string): string | undefined {
  let rpc: RpcBody;
  let rawIds: Array<string | undefined>;
  try {
    const json = parseStrictJsonBytes(Buffer.from(text, 'utf8'));
    rawIds = json.rawIds;
    rpc = rpcOf(json);
  } catch (e) {
    if (e instanceof JsonRejected) throw new RpcRejected(e.message);
    throw e;
  }
  let changed = false;
  rpc.messages.forEach((m, i) => {
    if (m.kind === 'response' && m.hasResult) changed = applyToMessage(rpc.objects[i]!, filter, requestOrigin) || changed;
  });
  if (!changed) return undefined;
  const parts = rpc.objects.map((o, i) => serializeMessage(o, rawIds[i]));
  return rpc.batch ? `[${parts.join(',')}]` : parts[0]!;
}

export type ResponseRewrite = { kind: 'keep' } | { kind: 'replace'; body: Buffer };

function essence(contentType: string | undefined): string {
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

/**
 * Filters an answer in `application/json` or `text/event-stream` (each event on its own), keeping
 * the JSON-RPC framing: ids as sent, events' other fields and line endings. A successful answer in
 * any other type, or one that is not strict JSON-RPC, throws `RpcRejected` (the caller refuses it):
 * what cannot be filtered must not pass.
 */
export function filterResponse(filter: ResponseFilter, body: Uint8Array, contentType: string | undefined, requestOrigin: string): ResponseRewrite {
  if (body.length === 0) return { kind: 'keep' };
  const type = essence(contentType);
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (type === 'application/json' || type.endsWith('+json')) {
    const out = rewriteRpcText(utf8(buf), filter, requestOrigin);
    return out === undefined ? { kind: 'keep' } : { kind: 'replace', body: Buffer.from(out) };
  }
  if (type === 'text/event-stream') {
    const out = rewriteEventStream(utf8(buf), (data) => (data.trim() === '' ? undefined : rewriteRpcText(data, filter, requestOrigin)));
    return out === undefined ? { kind: 'keep' } : { kind: 'replace', body: Buffer.from(out) };
  }
  throw new RpcRejected(`an answer of type "${type}" cannot be filtered`);
}

function utf8(buf: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new RpcRejected('not UTF-8');
  }
}

/** Masks a GET of the agent card (`/.well-known/agent-card.json`); undefined when nothing changed. */
export function maskAgentCardBody(body: Uint8Array, origin: string): Buffer | undefined {
  if (body.length === 0) return undefined;
  let card: unknown;
  try {
    card = parseStrictJsonBytes(body).value;
  } catch (e) {
    if (e instanceof JsonRejected) throw new RpcRejected(e.message);
    throw e;
  }
  return maskAgentCard(card, origin) ? Buffer.from(JSON.stringify(card)) : undefined;
}

export const AGENT_CARD_PATHS: ReadonlySet<string> = new Set(['/.well-known/agent-card.json', '/.well-known/agent.json']);

/** Audit and span fields for a body's calls: distinct names in order, comma-joined; never arguments. */
export interface RpcSummary {
  rpc_method: string;
  tool?: string;
  /** Number of messages, for a batch. */
  rpc_batch?: number;
}

export function summarizeCalls(calls: readonly RpcCall[], batch: boolean): RpcSummary | undefined {
  if (calls.length === 0) return undefined;
  const methods = [...new Set(calls.map((c) => c.method))].join(',');
  const tools = [...new Set(calls.flatMap((c) => (c.tool === undefined ? [] : [c.tool])))].join(',');
  return { rpc_method: methods, ...(tools ? { tool: tools } : {}), ...(batch ? { rpc_batch: calls.length } : {}) };
}
