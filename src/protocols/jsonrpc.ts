import { JsonRejected, parseStrictJsonBytes, type StrictJson } from './json.js';

/**
 * JSON-RPC 2.0 messages as MCP (Streamable HTTP) and A2A send them: one message or a batch (a
 * non-empty array). Only the shape is checked here; what a role may call is `mcp.ts` / `a2a.ts`.
 */
export type RpcMessage =
  /** A call: `id` present (string, number or null), answered by the callee. */
  | { kind: 'request'; method: string; params: unknown; rawId: string }
  /** A call without `id`: nobody answers it, so a denial cannot be a JSON-RPC error. */
  | { kind: 'notification'; method: string; params: unknown }
  /** The client answering a request of the server (MCP sampling, elicitation, roots). */
  | { kind: 'response'; rawId: string; result: unknown; error: unknown; hasResult: boolean };

export interface RpcBody {
  batch: boolean;
  messages: RpcMessage[];
  /** The parsed messages, index for index (objects), for response filtering. */
  objects: Array<Record<string, unknown>>;
}

/** The body is not JSON-RPC 2.0 (or not strict JSON): `payload_rejected`. */
export class RpcRejected extends Error {
  override name = 'RpcRejected';
}

/** Longest method or tool name looked at; longer ones are refused rather than matched or recorded. */
export const MAX_NAME_LENGTH = 256;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function classify(o: unknown, rawId: string | undefined): RpcMessage {
  if (!isObject(o)) throw new RpcRejected('a JSON-RPC message must be an object');
  if (o['jsonrpc'] !== '2.0') throw new RpcRejected('jsonrpc must be "2.0"');
  const hasId = Object.hasOwn(o, 'id');
  const id = o['id'];
  if (hasId && id !== null && typeof id !== 'string' && typeof id !== 'number') throw new RpcRejected('id must be a string, a number or null');
  if (Object.hasOwn(o, 'method')) {
    const method = o['method'];
    if (typeof method !== 'string' || method === '' || method.length > MAX_NAME_LENGTH) throw new RpcRejected('method must be a non-empty string');
    if (Object.hasOwn(o, 'result') || Object.hasOwn(o, 'error')) throw new RpcRejected('a request carries no result or error');
    const params = o['params'];
    if (params !== undefined && (params === null || typeof params !== 'object')) throw new RpcRejected('params must be an object or an array');
    return hasId ? { kind: 'request', method, params, rawId: rawId ?? JSON.stringify(id) } : { kind: 'notification', method, params };
  }
  const hasResult = Object.hasOwn(o, 'result');
  const hasError = Object.hasOwn(o, 'error');
  if (!hasId || hasResult === hasError) throw new RpcRejected('neither a request nor a response');
  if (hasError) {
    const e = o['error'];
    if (!isObject(e) || !Number.isInteger(e['code']) || typeof e['message'] !== 'string') throw new RpcRejected('error must have an integer code and a string message');
  }
  return { kind: 'response', rawId: rawId ?? JSON.stringify(id), result: o['result'], error: o['error'], hasResult };
}

/** Parses a request or response body as JSON-RPC 2.0, or throws `RpcRejected`. */
export function parseRpcBody(body: Uint8Array): RpcBody {
  let json: StrictJson;
  try {
    json = parseStrictJsonBytes(body);
  } catch (e) {
    if (e instanceof JsonRejected) throw new RpcRejected(e.message);
    throw e;
  }
  return rpcOf(json);
}

export function rpcOf(json: StrictJson): RpcBody {
  const { value, rawIds } = json;
  if (Array.isArray(value)) {
    if (value.length === 0) throw new RpcRejected('an empty batch');
    const messages: RpcMessage[] = [];
    let obj = 0;
    for (const el of value) {
      // rawIds counts object elements only; a non-object element is refused by classify anyway.
      messages.push(classify(el, isObject(el) ? rawIds[obj++] : undefined));
    }
    return { batch: true, messages, objects: value as Array<Record<string, unknown>> };
  }
  return { batch: false, messages: [classify(value, rawIds[0])], objects: [value as Record<string, unknown>] };
}

/** The reason code of the JSON-RPC error a denial answers with (`data.reason`). */
export type RpcDenyReason = 'method_not_allowed' | 'tool_not_allowed' | 'arguments_rejected';

const MESSAGES: Record<RpcDenyReason, string> = {
  method_not_allowed: 'method not allowed for this caller',
  tool_not_allowed: 'tool not allowed for this caller',
  arguments_rejected: 'arguments rejected by policy',
};

/** JSON-RPC server errors are -32000..-32099; -32001 is mesh-pep's "denied by policy". */
export const RPC_POLICY_ERROR = -32001;

function errorObject(rawId: string, reason: RpcDenyReason): string {
  // The id is spliced in as the client wrote it: its JSON type and digits survive exactly.
  return `{"jsonrpc":"2.0","id":${rawId},"error":{"code":${RPC_POLICY_ERROR},"message":${JSON.stringify(MESSAGES[reason])},"data":{"reason":"${reason}"}}}`;
}

/**
 * The JSON-RPC answer to a denied body: one error per message that has an id (a batch answers with
 * an array, every element denied because the batch is denied whole), or `undefined` when nothing in
 * it can be answered (notifications only): the caller then answers 403 with the usual JSON body.
 */
export function denialBody(body: RpcBody, reason: RpcDenyReason): string | undefined {
  const errors: string[] = [];
  for (const m of body.messages) if (m.kind === 'request') errors.push(errorObject(m.rawId, reason));
  if (errors.length === 0) return undefined;
  return body.batch ? `[${errors.join(',')}]` : errors[0];
}

/** Serialises a message object, keeping the id's original text. */
export function serializeMessage(o: Record<string, unknown>, rawId: string | undefined): string {
  if (rawId === undefined || !Object.hasOwn(o, 'id')) return JSON.stringify(o);
  const parts: string[] = [];
  for (const k of Object.keys(o)) {
    const v = k === 'id' ? rawId : JSON.stringify(o[k]);
    if (v !== undefined) parts.push(`${JSON.stringify(k)}:${v}`);
  }
  return `{${parts.join(',')}}`;
}
