import { isUtf8 } from 'node:buffer';
import { visit } from 'jsonc-parser';

/**
 * Strict JSON for policy decisions. `JSON.parse` keeps the last of two equal keys while other parsers
 * keep the first, so `{"name":"allowed","name":"forbidden"}` could be checked as one tool and run as
 * another: a body with a duplicate key (after unescaping, so `"a"` and `"\u0061"` are one key) is
 * refused. jsonc-parser's visitor (VS Code's parser) finds duplicates and the raw text of each
 * message's `id`; `JSON.parse` stays the authority on what is valid JSON, so both must accept a body.
 */
export class JsonRejected extends Error {
  override name = 'JsonRejected';
}

/** Deeper nesting than any JSON-RPC message needs; bounds the visitor's recursion. */
export const MAX_JSON_DEPTH = 64;

export interface StrictJson {
  value: unknown;
  /**
   * Raw source text of the `id` member of each message object, in order: the top-level object, or
   * each object element of a top-level array. `undefined` where the object has no `id`. Echoing this
   * text (not a re-serialised number) keeps `1.0` and 2^64 ids exactly as the client sent them.
   */
  rawIds: Array<string | undefined>;
}

const VISIT_OPTIONS = { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false } as const;

class DepthExceeded extends Error {}

/** UTF-8 bytes (RFC 8259 §8.1) → strict JSON, or throws `JsonRejected`. */
export function parseStrictJsonBytes(bytes: Uint8Array): StrictJson {
  if (!isUtf8(bytes)) throw new JsonRejected('not UTF-8');
  return parseStrictJson(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
}

export function parseStrictJson(text: string): StrictJson {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new JsonRejected('not valid JSON');
  }
  // One key set per open object; arrays hold `undefined`.
  const stack: Array<Set<string> | undefined> = [];
  const rawIds: Array<string | undefined> = [];
  const topIsArray = text.trimStart().startsWith('[');
  const messageDepth = topIsArray ? 2 : 1;
  let duplicate = false;
  let error = false;
  let pendingId = false;
  const open = (keys: Set<string> | undefined) => {
    if (stack.length >= MAX_JSON_DEPTH) throw new DepthExceeded();
    pendingId = false;
    stack.push(keys);
  };
  try {
    visit(
      text,
      {
        onObjectBegin: () => {
          open(new Set());
          if (stack.length === messageDepth) rawIds.push(undefined);
        },
        onObjectEnd: () => void stack.pop(),
        onArrayBegin: () => open(undefined),
        onArrayEnd: () => void stack.pop(),
        onObjectProperty: (name) => {
          const keys = stack[stack.length - 1];
          if (keys === undefined) return;
          if (keys.has(name)) duplicate = true;
          keys.add(name);
          pendingId = name === 'id' && stack.length === messageDepth;
        },
        onLiteralValue: (_v, offset, length) => {
          if (pendingId) rawIds[rawIds.length - 1] = text.slice(offset, offset + length);
          pendingId = false;
        },
        onError: () => {
          error = true;
        },
      },
      VISIT_OPTIONS,
    );
  } catch (e) {
    if (e instanceof DepthExceeded || e instanceof RangeError) throw new JsonRejected('nested too deeply');
    throw e;
  }
  if (error) throw new JsonRejected('not valid JSON');
  if (duplicate) throw new JsonRejected('duplicate key');
  return { value, rawIds };
}
