import { gunzipSync, gzipSync } from 'node:zlib';
import { applyEdits, totalCounts, type Counts } from '../edits.js';
import { scanForm } from './form.js';
import { scanText } from './text.js';
import type { ScanState } from './state.js';

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

/**
 * The body layer. Gzip bodies (by magic bytes or content type) are inflated with the output capped at
 * `maxBytes` and, if anything is redacted, re-gzipped, so the body's Content-Encoding stays true and
 * the caller only updates Content-Length. Text is UTF-8; bytes that are not valid UTF-8 are read as
 * Latin-1, which round-trips every byte, so redaction of a binary body touches only the matched bytes.
 * Form bodies go to the form layer, everything else to the string layer (which recognises JSON).
 */
export function scanBody(state: ScanState, body: Uint8Array, contentType: string | undefined, maxBytes: number, allowGzip = true): BodyScan {
  const type = mediaType(contentType);
  if (allowGzip && isGzip(body, type)) {
    let inflated: Buffer;
    try {
      inflated = gunzipSync(body, { maxOutputLength: maxBytes });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return { counts: {}, redacted: undefined, truncated: true };
      // Not actually gzip (or corrupt): scan the bytes as they are.
      return scanBody(state, body, contentType, maxBytes, false);
    }
    const innerType = type === 'application/gzip' || type === 'application/x-gzip' ? undefined : contentType;
    const inner = scanBody(state, inflated, innerType, maxBytes, false);
    return { ...inner, redacted: inner.redacted === undefined ? undefined : gzipSync(inner.redacted) };
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
  const edits = type === 'application/x-www-form-urlencoded' ? scanForm(state, text, 0) : scanText(state, text, { key: undefined }, 0);
  const counts = totalCounts(edits);
  if (edits.length === 0 || truncated) return { counts, redacted: undefined, truncated: truncated || state.budget.exhausted };
  const out = applyEdits(text, edits);
  return { counts, redacted: latin1 ? Buffer.from(out, 'latin1') : Buffer.from(out, 'utf8'), truncated: state.budget.exhausted };
}
