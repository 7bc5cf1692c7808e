import { deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { applyEdits, totalCounts, type Counts, type Edit } from '../edits.js';
import { scanForm } from './form.js';
import { scanText } from './text.js';
import { within, type ScanState } from './state.js';

/** Outcome of scanning one body: counts, the redacted bytes when something was replaced, and whether the scan was cut short. */
export interface BodyScan {
  counts: Counts;
  redacted: Uint8Array | undefined;
  truncated: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';', 1)[0].trim().toLowerCase();
}

function isGzip(body: Uint8Array, type: string): boolean {
  return (body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b) || type === 'application/gzip' || type === 'application/x-gzip';
}

/** A zlib stream (HTTP `deflate`): CM 8, a window size up to 32K and the header checksum (RFC 1950). */
function isZlib(body: Uint8Array): boolean {
  return body.length >= 2 && (body[0] & 0x0f) === 8 && body[0] >> 4 <= 7 && ((body[0] << 8) | body[1]) % 31 === 0;
}

/** Media types whose body is a sequence of records scanned one at a time. */
function isEventStream(type: string): boolean {
  return type === 'text/event-stream';
}

function isLineDelimitedJson(type: string): boolean {
  return type === 'application/x-ndjson' || type === 'application/ndjson' || type === 'application/jsonl' || type === 'application/x-jsonlines' || type === 'application/json-seq';
}

/**
 * The body layer. Gzip bodies (by magic bytes or content type) are inflated with the output capped at
 * `maxBytes` and, if anything is redacted, re-gzipped, so the body's Content-Encoding stays true and
 * the caller only updates Content-Length. Text is UTF-8; bytes that are not valid UTF-8 are read as
 * Latin-1, which round-trips every byte, so redaction of a binary body touches only the matched bytes.
 * Form bodies go to the form layer, everything else to the string layer (which recognises JSON).
 */
export function scanBody(state: ScanState, body: Uint8Array, contentType: string | undefined, maxBytes: number, allowGzip = true): BodyScan {
  const type = mediaType(contentType);
  // Fallback for bodies whose content-encoding header was lost or never set (the pipeline decodes
  // what the headers declare): gzip and zlib are recognised by their magic bytes.
  const zlib = allowGzip && !isGzip(body, type) && isZlib(body);
  if (allowGzip && (isGzip(body, type) || zlib)) {
    let inflated: Buffer;
    try {
      inflated = zlib ? inflateSync(body, { maxOutputLength: maxBytes }) : gunzipSync(body, { maxOutputLength: maxBytes });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return { counts: {}, redacted: undefined, truncated: true };
      // Not actually compressed (or corrupt): scan the bytes as they are.
      return scanBody(state, body, contentType, maxBytes, false);
    }
    const innerType = type === 'application/gzip' || type === 'application/x-gzip' ? undefined : contentType;
    const inner = within(state, zlib ? 'deflate' : 'gzip', () => scanBody(state, inflated, innerType, maxBytes, false));
    const reencode = zlib ? deflateSync : gzipSync;
    return { ...inner, redacted: inner.redacted === undefined ? undefined : reencode(inner.redacted) };
  }

  const truncated = body.length > maxBytes;
  const view = truncated ? body.subarray(0, maxBytes) : body;
  let text: string;
  let latin1 = false;
  try {
    text = utf8.decode(view);
  } catch {
    // A cut in the middle of a character, or binary: Latin-1 keeps one char per byte.
    text = Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('latin1');
    latin1 = true;
  }
  if (!state.budget.spendDecoded(text.length)) return { counts: {}, redacted: undefined, truncated: true };
  const edits =
    type === 'application/x-www-form-urlencoded'
      ? scanForm(state, text, 0)
      : isEventStream(type)
        ? scanEventStream(state, text)
        : isLineDelimitedJson(type)
          ? scanLines(state, text)
          : scanText(state, text, { key: undefined }, 0);
  const counts = totalCounts(edits);
  if (edits.length === 0 || truncated) return { counts, redacted: undefined, truncated: truncated || state.budget.exhausted };
  const out = applyEdits(text, edits);
  return { counts, redacted: latin1 ? Buffer.from(out, 'latin1') : Buffer.from(out, 'utf8'), truncated: state.budget.exhausted };
}

/**
 * `text/event-stream` (MCP Streamable HTTP, LLM token streams): each `data:` field is scanned on its
 * own, so a JSON-RPC message in an event is read as JSON; other fields and comments as text. A
 * marker holds no line break, so a redacted event stays one well-formed event.
 */
export function scanEventStream(state: ScanState, text: string): Edit[] {
  const edits: Edit[] = [];
  forEachLine(text, (s, e) => {
    let from = s;
    if (text.startsWith('data:', s)) {
      from = s + 5;
      if (text.charCodeAt(from) === 32) from++;
    }
    if (e - from < state.minLength) return;
    for (const ed of within(state, 'sse', () => scanText(state, text.slice(from, e), { key: undefined }, 0))) edits.push({ ...ed, start: ed.start + from, end: ed.end + from });
  });
  return edits;
}

/** NDJSON / JSON Lines: one JSON document per line. */
export function scanLines(state: ScanState, text: string): Edit[] {
  const edits: Edit[] = [];
  forEachLine(text, (s, e) => {
    if (e - s < state.minLength) return;
    for (const ed of within(state, 'ndjson', () => scanText(state, text.slice(s, e), { key: undefined }, 0))) edits.push({ ...ed, start: ed.start + s, end: ed.end + s });
  });
  return edits;
}

/** Calls `fn(start, end)` for each line, without its CR, LF or CRLF terminator. */
function forEachLine(text: string, fn: (start: number, end: number) => void): void {
  let s = 0;
  while (s <= text.length) {
    let e = s;
    while (e < text.length && text.charCodeAt(e) !== 10 && text.charCodeAt(e) !== 13) e++;
    if (e > s) fn(s, e);
    if (e >= text.length) break;
    s = e + (text.charCodeAt(e) === 13 && text.charCodeAt(e + 1) === 10 ? 2 : 1);
  }
}
