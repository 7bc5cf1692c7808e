import type { DetectContext, Match } from '../detector.js';
import { mergeEdits, redactionMarker, totalCounts, applyEdits, resolveMatches, type Edit } from '../edits.js';
import { scanBase64Runs } from './base64.js';
import { hasHexRun, scanHexRuns } from './hex.js';
import { scanJsonText } from './json.js';
import { MAX_DEPTH, within, type ScanState } from './state.js';
import {
  decodeBackslash,
  decodeHtmlRefs,
  decodePercent,
  encodeBackslash,
  encodePercent,
  hasBackslashEscapes,
  hasHtmlRefs,
  hasPercentEscapes,
  needsNormalizing,
  normalizeView,
  type DecodedView,
} from './views.js';

/**
 * The string layer: every JSON string value, form value and text body goes through here. It looks for
 * the encodings agents wrap data in and follows each one down (bounded by MAX_DEPTH):
 *   1. a string that is itself JSON (tool-call `arguments`) → the JSON layer, re-serialised in place;
 *   2. decoded views (percent encoding, backslash escapes, HTML character references) → findings
 *      mapped back to raw offsets (double encoding is one more level down);
 *   3. the detectors over the raw text;
 *   4. the normalization view (format characters removed, Unicode spaces, dashes and compatibility
 *      forms folded) when the text has non-ASCII characters, mapped back to the raw span;
 *   5. hex and base64 runs that decode to text → re-encoded after redaction.
 * Returns edits in this text's coordinates; earlier steps win where findings overlap.
 */
export function scanText(state: ScanState, text: string, ctx: DetectContext, depth: number): Edit[] {
  if (text.length < state.minLength || state.budget.over(text.length)) return [];
  if (depth < MAX_DEPTH) {
    const nested = scanEmbeddedJson(state, text, ctx, depth);
    if (nested !== undefined) return nested;
  }
  if (depth >= MAX_DEPTH) return detect(state, text, ctx);
  // Decoded views first: a raw match next to an escape (`\u0062ob@x.com`) would cut the escape in half.
  let edits: Edit[] = [];
  if (hasPercentEscapes(text)) {
    edits = viaView(state, 'url', decodePercent(text, false), ctx, depth, (t) => encodePercent(t, false));
  }
  if (hasBackslashEscapes(text)) {
    edits = mergeEdits(edits, viaView(state, 'escape', decodeBackslash(text), ctx, depth, encodeBackslash));
  }
  if (hasHtmlRefs(text)) {
    edits = mergeEdits(edits, viaView(state, 'html', decodeHtmlRefs(text), ctx, depth, same));
  }
  edits = mergeEdits(edits, detect(state, text, ctx));
  if (needsNormalizing(text)) {
    const view = normalizeView(text);
    if (view.decoded !== text) edits = mergeEdits(edits, viaView(state, 'unicode', view, ctx, depth, same));
  }
  if (hasHexRun(text)) edits = mergeEdits(edits, scanHexRuns(state, text, ctx, depth, edits));
  return mergeEdits(edits, scanBase64Runs(state, text, ctx, depth, edits));
}

/** Runs every detector; the budget is polled between detectors. */
export function detect(state: ScanState, text: string, ctx: DetectContext): Edit[] {
  const matches: Match[] = [];
  for (const d of state.detectors) {
    if (state.budget.over(text.length)) break;
    d.find(text, ctx, state.enabled, matches);
  }
  if (matches.length === 0) return [];
  const where = state.trail.length === 0 ? 'text' : state.trail.join('>');
  return resolveMatches(matches)
    .filter((m) => state.enabled.has(m.entity))
    .map((m) => ({ start: m.start, end: m.end, text: redactionMarker(m.entity), counts: { [`${m.entity}@${where}`]: 1 } }));
}

/** Markers are plain ASCII: a view whose raw form is plain text takes them as they are. */
const same = (t: string): string => t;

function viaView(state: ScanState, layer: string, view: DecodedView, ctx: DetectContext, depth: number, encode: (t: string) => string): Edit[] {
  if (!state.budget.spendDecoded(view.decoded.length)) return [];
  const inner = within(state, layer, () => scanText(state, view.decoded, ctx, depth + 1));
  return inner.map((e) => ({ start: view.map[e.start], end: view.map[e.end], text: encode(e.text), counts: e.counts }));
}

/** A string holding a JSON document (`{…}`, `[…]`) or a JSON string literal (`"…"`), re-encoded as JSON. */
function scanEmbeddedJson(state: ScanState, text: string, ctx: DetectContext, depth: number): Edit[] | undefined {
  const first = firstNonSpace(text);
  if (first === -1) return undefined;
  const c = text[first];
  if (c !== '{' && c !== '[' && c !== '"') return undefined;
  const last = lastNonSpace(text);
  const l = text[last];
  if (!((c === '{' && l === '}') || (c === '[' && l === ']') || (c === '"' && l === '"' && last > first))) return undefined;
  if (c === '"') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (typeof parsed !== 'string') return undefined;
    const inner = within(state, 'json', () => scanText(state, parsed, ctx, depth + 1));
    if (inner.length === 0) return [];
    return [{ start: 0, end: text.length, text: JSON.stringify(applyEdits(parsed, inner)), counts: totalCounts(inner) }];
  }
  return within(state, 'json', () => scanJsonText(state, text, depth + 1, ctx.key));
}

function firstNonSpace(text: string): number {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 32) return i;
  return -1;
}

function lastNonSpace(text: string): number {
  for (let i = text.length - 1; i >= 0; i--) if (text.charCodeAt(i) > 32) return i;
  return -1;
}
