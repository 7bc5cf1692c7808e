import type { DetectContext } from '../detector.js';
import { applyEdits, totalCounts, type Edit } from '../edits.js';
import { longRuns } from '../runs.js';
import { scanText } from './text.js';
import type { ScanState } from './state.js';

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
  const runs: Array<[number, string]> = [];
  for (const [s, e] of longRuns(text)) {
    let end = e;
    while (end < text.length && end - e < 2 && text.charCodeAt(end) === 61 /* = */) end++;
    // A run glued to more padding is not one base64 value.
    if (text.charCodeAt(end) !== 61) runs.push([s, text.slice(s, end)]);
  }
  let t = 0;
  for (const [start, run] of runs) {
    const end = start + run.length;
    while (t < taken.length && taken[t].end <= start) t++;
    if (t < taken.length && taken[t].start < end) continue; // already a finding (a JWT, a key)
    if (state.budget.over(run.length)) break;
    const edit = scanRun(state, run, start, ctx, depth);
    if (edit) out.push(edit);
  }
  return out;
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
  if (!mostlyPrintable(probe, false)) return undefined;
  const bytes = Buffer.from(body, encoding);
  if (bytes.length < MIN_DECODED || !mostlyPrintable(bytes, true)) return undefined;
  const decoded = bytes.toString('utf8');
  if (!state.budget.spendDecoded(decoded.length)) return undefined;
  const inner = scanText(state, decoded, ctx, depth + 1);
  if (inner.length === 0) return undefined;
  let reencoded = Buffer.from(applyEdits(decoded, inner), 'utf8').toString(encoding);
  // Keep the original's padding style: strip only when the input was visibly unpadded.
  if (!urlSafe && body.length % 4 !== 0 && !run.endsWith('=')) reencoded = reencoded.replace(/=+$/, '');
  if (urlSafe && run.endsWith('=')) reencoded += '='.repeat((4 - (reencoded.length % 4)) % 4);
  return { start, end: start + run.length, text: reencoded, counts: totalCounts(inner) };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * At least 90% printable characters (tabs and newlines count). `whole` also requires valid UTF-8; a
 * prefix may end in the middle of a character, so it is checked byte-wise only.
 */
function mostlyPrintable(bytes: Uint8Array, whole: boolean): boolean {
  if (bytes.length === 0) return false;
  let bad = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if ((b < 32 && b !== 9 && b !== 10 && b !== 13) || b === 127) bad++;
  }
  if (bad * 10 > bytes.length) return false;
  if (!whole) return true;
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
