import type { DetectContext } from '../detector.js';
import { applyEdits, totalCounts, type Edit } from '../edits.js';
import { findRuns } from '../runs.js';
import { mostlyPrintableText } from './printable.js';
import { scanText } from './text.js';
import { within, type ScanState } from './state.js';

/**
 * Hex-encoded text (`616c696365406578616d706c652e636f6d`): runs of an even number of hex digits, in
 * one letter case, that decode to printable UTF-8 are scanned one level down and re-encoded in the
 * same case after redaction. Hashes, ids and key material decode to binary and are skipped after a
 * short prefix check, so they cost one pass.
 */
const HEX = (() => {
  const t = new Uint8Array(128);
  for (const c of '0123456789abcdefABCDEF') t[c.charCodeAt(0)] = 1;
  return t;
})();
const MIN_RUN = 16;
const PREFIX_CHECK = 32;

export function hasHexRun(text: string): boolean {
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 128 && HEX[c] === 1) {
      if (++run >= MIN_RUN) return true;
    } else run = 0;
  }
  return false;
}

export function scanHexRuns(state: ScanState, text: string, ctx: DetectContext, depth: number, taken: readonly Edit[]): Edit[] {
  const out: Edit[] = [];
  let t = 0;
  for (const [start, end] of findRuns(text, HEX, MIN_RUN)) {
    if ((end - start) % 2 === 1) continue; // hex of bytes has even length
    while (t < taken.length && taken[t].end <= start) t++;
    if (t < taken.length && taken[t].start < end) continue;
    const run = text.slice(start, end);
    const upper = /[A-F]/.test(run);
    if (upper && /[a-f]/.test(run)) continue; // mixed case: an identifier, not an encoding
    if (state.budget.over(run.length)) break;
    const prefix = Buffer.from(run.slice(0, PREFIX_CHECK), 'hex');
    if (!mostlyPrintableText(prefix, false)) continue;
    const bytes = Buffer.from(run, 'hex');
    if (!mostlyPrintableText(bytes, true)) continue;
    const decoded = bytes.toString('utf8');
    if (!state.budget.spendDecoded(decoded.length)) break;
    const inner = within(state, 'hex', () => scanText(state, decoded, ctx, depth + 1));
    if (inner.length === 0) continue;
    let reencoded = Buffer.from(applyEdits(decoded, inner), 'utf8').toString('hex');
    if (upper) reencoded = reencoded.toUpperCase();
    out.push({ start, end, text: reencoded, counts: totalCounts(inner) });
  }
  return out;
}
