import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { MeshError } from '../errors.js';
import { decodeBody, encodeBody, parseCodings, UndecodableBody } from './content-coding.js';
import type { ReasonCode } from '../policy/reasons.js';
import type { PayloadContext, TierHandler } from './tier-handler.js';

/**
 * The payload core, free of Envoy types: given the stream's plain context and a whole body, run
 * scan → protect (request) or unprotect → scan (response) and say what to do with the body.
 * The ext_proc adapter (and the library API) turn the verdict into a wire response.
 */

/** What the leak guard (DLP) found in a plaintext body and what to do about it. */
export interface ScanResult {
  /** `clean`: nothing found; `redact`: `body` has findings replaced; `report`: found, pass as is; `block`: deny. */
  action: 'clean' | 'redact' | 'report' | 'block';
  /** The body to continue with (the redacted one for `redact`, else the input). */
  body: Uint8Array;
  /** Findings by entity type: counts only, never values. */
  findings: Readonly<Record<string, number>>;
  /** Where each finding was (`ENTITY@layer>layer`), for the audit and the span; names only. */
  layers?: readonly string[];
}

/** The leak-guard step; wired in by the server when the domain has a `dlp` block. */
export type PayloadScan = (plaintext: Uint8Array, ctx: PayloadContext) => Promise<ScanResult>;

/** Hash and size of the plaintext a verdict is about (for the audit record; never the bytes). */
export interface PayloadDigest {
  readonly sha256: string;
  readonly bytes: number;
}

export type BodyVerdict =
  | {
      kind: 'replace';
      body: Uint8Array;
      contentType: string;
      headers: Readonly<Record<string, string>>;
      /** Headers that no longer describe the new body (`content-encoding` once it is decoded). */
      removeHeaders?: readonly string[];
      plaintext: PayloadDigest;
      findings: Readonly<Record<string, number>>;
    }
  | { kind: 'pass'; plaintext: PayloadDigest; findings: Readonly<Record<string, number>> }
  | { kind: 'deny'; reason: ReasonCode; plaintext: PayloadDigest | undefined; findings: Readonly<Record<string, number>>; layers?: readonly string[] };

export interface BodyInput {
  ctx: PayloadContext;
  body: Uint8Array;
  handler: TierHandler;
  scan?: PayloadScan;
}

const NO_FINDINGS: Readonly<Record<string, number>> = Object.freeze({});

/**
 * The digest is taken when `sha256` is first read, not when the verdict is made: only an audit record
 * reads it, and most allows write none (OUTPUT_ONLY and EGRESS domains record denials and egress
 * hops), while hashing a 64 KiB body cost ~35 µs of the ~110 µs ext_proc RETRIEVAL spent on it.
 * The pipeline never changes a body it was handed, so the hash is the same whenever it is taken; the
 * body reference is dropped once it is. A class (not a per-object accessor, which gives every digest
 * its own hidden class) with `toJSON`, so serialising a verdict still shows the hash.
 */
class LazyDigest implements PayloadDigest {
  #body: Uint8Array | undefined;
  #hex: string | undefined;
  readonly bytes: number;
  constructor(body: Uint8Array) {
    this.#body = body;
    this.bytes = body.length;
  }
  get sha256(): string {
    if (this.#hex === undefined) {
      this.#hex = createHash('sha256').update(this.#body!).digest('hex');
      this.#body = undefined;
    }
    return this.#hex;
  }
  toJSON(): { sha256: string; bytes: number } {
    return { sha256: this.sha256, bytes: this.bytes };
  }
}

export function digest(body: Uint8Array): PayloadDigest {
  return new LazyDigest(body);
}

/** `application/json`, `application/problem+json`, ... (parameters ignored). */
export function isJsonContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const essence = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return essence === 'application/json' || essence.endsWith('+json');
}

/**
 * JSON exchanged between systems must be UTF-8 (RFC 8259 §8.1). A body that claims JSON but is not
 * UTF-8 is refused rather than protected or passed: scanners would read it differently from the
 * callee, which is how leaks slip past.
 */
function assertJsonIsUtf8(body: Uint8Array, contentType: string | undefined): void {
  if (!isJsonContentType(contentType)) return;
  // Validates in place; a fatal TextDecoder (as before) built a string of the whole body to throw away.
  if (!isUtf8(body)) throw new JsonEncodingError();
}

class JsonEncodingError extends MeshError {
  constructor() {
    super('payload_rejected', 'body declared as JSON is not valid UTF-8');
  }
}

async function scanned(body: Uint8Array, input: BodyInput): Promise<ScanResult> {
  if (!input.scan) return { action: 'clean', body, findings: NO_FINDINGS };
  return input.scan(body, input.ctx);
}

/**
 * A body in a block or redact domain is never passed or protected unscanned: if its content coding
 * cannot be undone, it is refused. Elsewhere an undecodable response body passes as it is (it cannot
 * be this domain's protected material either).
 */
function scanMustSee(input: BodyInput): boolean {
  return input.scan !== undefined && input.ctx.domain.dlp !== undefined && input.ctx.domain.dlp.action !== 'report';
}

const CODING_HEADERS: readonly string[] = ['content-encoding'];

async function requestPath(input: BodyInput): Promise<BodyVerdict> {
  const { ctx, handler } = input;
  const codings = parseCodings(ctx.contentEncoding);
  // Every tier replaces a request body with its own (un-encoded) output, so an undecodable request
  // body is refused in every domain: sealing it would hide what it holds from the leak guard.
  const body = codings.length ? decodeBody(input.body, codings, ctx.domain.maxBodyBytes) : input.body;
  const plainCtx = codings.length ? { ...ctx, contentEncoding: undefined } : ctx;
  const plaintext = digest(body);
  assertJsonIsUtf8(body, ctx.contentType);
  const scan = await scanned(body, { ...input, ctx: plainCtx });
  if (scan.action === 'block') return { kind: 'deny', reason: 'dlp_blocked', plaintext, findings: scan.findings, ...(scan.layers ? { layers: scan.layers } : {}) };
  const removeHeaders = codings.length ? { removeHeaders: CODING_HEADERS } : {};
  // `tier_scope: response` (an MCP server or A2A agent must read its calls): the request crosses in
  // plaintext once the leak guard has passed it; answers are still opened by the tier.
  if (ctx.domain.tierScope === 'response') {
    if (scan.action !== 'redact' && !codings.length) return { kind: 'pass', plaintext, findings: scan.findings };
    return { kind: 'replace', body: scan.body, contentType: ctx.contentType ?? 'application/octet-stream', headers: {}, ...removeHeaders, plaintext, findings: scan.findings };
  }
  const out = await handler.protect(scan.body, plainCtx);
  return { kind: 'replace', body: out.body, contentType: out.contentType, headers: out.headers, ...removeHeaders, plaintext, findings: scan.findings };
}

async function responsePath(input: BodyInput): Promise<BodyVerdict> {
  const { ctx, handler } = input;
  const codings = parseCodings(ctx.contentEncoding);
  let body = input.body;
  if (codings.length) {
    try {
      body = decodeBody(body, codings, ctx.domain.maxBodyBytes);
    } catch (e) {
      if (!(e instanceof UndecodableBody) || scanMustSee(input)) throw e;
      return { kind: 'pass', plaintext: digest(input.body), findings: NO_FINDINGS };
    }
  }
  const plainCtx = codings.length ? { ...ctx, contentEncoding: undefined } : ctx;
  const opened = await handler.unprotect(body, plainCtx);
  const plainBody = opened?.body ?? body;
  const plainType = opened?.contentType ?? ctx.contentType;
  const plaintext = digest(plainBody);
  assertJsonIsUtf8(plainBody, plainType);
  const scan = await scanned(plainBody, { ...input, ctx: { ...plainCtx, contentType: plainType } });
  if (scan.action === 'block') return { kind: 'deny', reason: 'dlp_blocked', plaintext, findings: scan.findings, ...(scan.layers ? { layers: scan.layers } : {}) };
  if (!opened && scan.action !== 'redact') return { kind: 'pass', plaintext, findings: scan.findings };
  return {
    kind: 'replace',
    // A redacted pass-through body is encoded again as its headers say; an opened one is new plaintext.
    body: !opened && codings.length ? encodeBody(scan.body, codings) : scan.body,
    contentType: plainType ?? 'application/octet-stream',
    headers: opened?.headers ?? {},
    ...(opened && codings.length ? { removeHeaders: CODING_HEADERS } : {}),
    plaintext,
    findings: scan.findings,
  };
}

/**
 * Runs one body through its tier. Deliberate refusals (`MeshError`, e.g. a tampered JWE or a DLP
 * block) become a `deny` verdict with their reason; anything else is a bug or an outage and is
 * thrown, for the caller to answer `internal_error` and log.
 */
export async function processBody(input: BodyInput): Promise<BodyVerdict> {
  // An empty body carries nothing to protect or open (a DELETE, an HTTP/2 empty DATA frame).
  if (input.body.length === 0) return { kind: 'pass', plaintext: digest(input.body), findings: NO_FINDINGS };
  try {
    return input.ctx.direction === 'request' ? await requestPath(input) : await responsePath(input);
  } catch (e) {
    if (e instanceof MeshError) return { kind: 'deny', reason: e.code, plaintext: undefined, findings: NO_FINDINGS };
    throw e;
  }
}
