import type { Edit } from '../edits.js';
import { scanText } from './text.js';
import { within, type ScanState } from './state.js';
import { decodePercent, encodePercent } from './views.js';

/**
 * `application/x-www-form-urlencoded` bodies: each value is form-decoded, scanned with its field name
 * as context, and redactions are form-encoded back into the value's own bytes, so the body stays a
 * valid form with the same fields in the same order.
 */
export function scanForm(state: ScanState, text: string, depth: number): Edit[] {
  const edits: Edit[] = [];
  let at = 0;
  while (at <= text.length) {
    if (state.budget.over(64)) break;
    let amp = text.indexOf('&', at);
    if (amp === -1) amp = text.length;
    const eq = text.indexOf('=', at);
    if (eq !== -1 && eq < amp) {
      const key = decodePercent(text.slice(at, eq), true).decoded;
      const valueStart = eq + 1;
      const view = decodePercent(text.slice(valueStart, amp), true);
      for (const e of within(state, 'form', () => scanText(state, view.decoded, { key }, depth + 1))) {
        edits.push({ start: valueStart + view.map[e.start], end: valueStart + view.map[e.end], text: encodePercent(e.text, true), counts: e.counts });
      }
    }
    at = amp + 1;
  }
  return edits;
}
