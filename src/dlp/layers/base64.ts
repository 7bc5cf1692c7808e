import type { DetectContext } from '../detector.js';
import { applyEdits, totalCounts, type Edit } from '../edits.js';
import { longRuns } from '../runs.js';
import { mostlyPrintableText } from './printable.js';
import { scanText } from './text.js';
import { within, type ScanState } from './state.js';

/**
 * Base64 (standard or URL-safe) runs of at least MIN_RUN characters that decode to mostly printable
 * UTF-8 text are scanned as text one level down. When something is redacted inside, the whole run is
 * re-encoded in its own alphabet and padding style. Runs that decode to binary (hashes, ids, images)
 * are skipped after checking a short prefix, so noise costs one pass.
 */
const MIN_DECODED = 8;
const PREFIX_CHECK = 64;

export function scanBase64Runs(state: ScanState, text: string, ctx: DetectContext, depth: number, taken: readonly Edit[]): Edit[] {
  if (text.length < 20) return [];
  const out: Edit[] = [];
  const runs: Array<[number, number]> = [];
  const all = longRuns(text);
  for (let r = 0; r < all.length; r++) {
    const [s, e] = all[r];
    let end = e;
    while (end < text.length && end - e < 2 && text.charCodeAt(end) === 61 /* = */) end++;
    // A run glued to more padding is not one base64 value.
    if (text.charCodeAt(end) === 61) continue;
    if (end === e && isLineBreak(text, e)) {
      const wrapped = mimeBlock(text, s, e);
      if (wrapped !== undefined) {
        runs.push([s, wrapped]);
        while (r + 1 < all.length && all[r + 1][0] < wrapped) r++;
        continue;
      }
    }
    runs.push([s, end]);
  }
  let t = 0;
  for (const [start, end] of runs) {
    while (t < taken.length && taken[t].end <= start) t++;
    if (t < taken.length && taken[t].start < end) continue; // already a finding (a JWT, a key)
    if (state.budget.over(end - start)) break;
    const raw = text.slice(start, end);
    const edit = raw.includes('\n') ? scanWrapped(state, raw, start, ctx, depth) : scanRun(state, raw, start, ctx, depth);
    if (edit) out.push(edit);
  }
  return out;
}

function isLineBreak(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return c === 10 || (c === 13 && text.charCodeAt(i + 1) === 10);
}

function isB64(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47 || c === 45 || c === 95;
}

/**
 * MIME and PEM wrap base64 at a fixed width (76, 64): lines of the same length joined by CRLF or LF,
 * the last one shorter and padded. Returns the end of such a block starting with the line [s, e), or
 * undefined when the next line does not continue it. Each line decoded alone splits a value that
 * straddles a break, so the block is decoded as one.
 */
function mimeBlock(text: string, s: number, e: number): number | undefined {
  const width = e - s;
  if (width % 4 !== 0) return undefined; // encoders wrap at a multiple of 4 (76, 64)
  let end = e;
  let lines = 1;
  while (isLineBreak(text, end)) {
    const next = end + (text.charCodeAt(end) === 13 ? 2 : 1);
    let k = next;
    while (k < text.length && isB64(text.charCodeAt(k))) k++;
    const len = k - next;
    if (len === 0 || len > width) break;
    let p = k;
    while (p < text.length && p - k < 2 && text.charCodeAt(p) === 61) p++;
    if (text.charCodeAt(p) === 61) break; // more padding than base64 has
    end = p;
    lines++;
    if (len < width || p > k) break; // a short or padded line is the last one
  }
  return lines > 1 ? end : undefined;
}

/** A wrapped block: decoded as one value, re-encoded and re-wrapped at the same width and line break. */
function scanWrapped(state: ScanState, raw: string, start: number, ctx: DetectContext, depth: number): Edit | undefined {
  const crlf = raw.includes('\r\n');
  const lines = raw.split(/\r?\n/);
  const width = lines[0].length;
  const edit = scanRun(state, lines.join(''), 0, ctx, depth);
  if (!edit) return undefined;
  const wrapped: string[] = [];
  for (let i = 0; i < edit.text.length; i += width) wrapped.push(edit.text.slice(i, i + width));
  return { start, end: start + raw.length, text: wrapped.join(crlf ? '\r\n' : '\n'), counts: edit.counts };
}

function scanRun(state: ScanState, run: string, start: number, ctx: DetectContext, depth: number): Edit | undefined {
  const urlSafe = /[-_]/.test(run);
  if (urlSafe && /[+/]/.test(run)) return undefined;
  const body = run.replace(/=+$/, '');
  if (body.length % 4 === 1) return undefined;
  // Plain words and identifiers are letters only; real base64 of text mixes cases and digits or ends in padding.
  if (!/[0-9+/_=-]/.test(run) && !(/[a-z]/.test(run) && /[A-Z]/.test(run))) return undefined;
  const encoding = urlSafe ? 'base64url' : 'base64';
  const probe = Buffer.from(body.slice(0, PREFIX_CHECK), encoding);
  if (!mostlyPrintableText(probe, false)) return undefined;
  const bytes = Buffer.from(body, encoding);
  if (bytes.length < MIN_DECODED || !mostlyPrintableText(bytes, true)) return undefined;
  const decoded = bytes.toString('utf8');
  if (!state.budget.spendDecoded(decoded.length)) return undefined;
  const inner = within(state, 'base64', () => scanText(state, decoded, ctx, depth + 1));
  if (inner.length === 0) return undefined;
  let reencoded = Buffer.from(applyEdits(decoded, inner), 'utf8').toString(encoding);
  // Keep the original's padding style: strip only when the input was visibly unpadded.
  if (!urlSafe && body.length % 4 !== 0 && !run.endsWith('=')) reencoded = reencoded.replace(/=+$/, '');
  if (urlSafe && run.endsWith('=')) reencoded += '='.repeat((4 - (reencoded.length % 4)) % 4);
  return { start, end: start + run.length, text: reencoded, counts: totalCounts(inner) };
}

