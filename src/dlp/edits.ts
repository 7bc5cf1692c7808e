import type { Match } from './detector.js';

/** Findings by entity name. Only names and counts: values never leave the scanner. */
export type Counts = Record<string, number>;

/**
 * One replacement in a layer's own encoding: [start, end) of that layer's text becomes `text`.
 * `counts` are the findings the replacement removes (a re-encoded base64 blob can hold several).
 */
export interface Edit {
  start: number;
  end: number;
  text: string;
  counts: Counts;
}

export function addCounts(into: Counts, from: Readonly<Counts>): void {
  for (const k of Object.keys(from)) into[k] = (into[k] ?? 0) + from[k];
}

export function totalCounts(edits: readonly Edit[]): Counts {
  const c: Counts = {};
  for (const e of edits) addCounts(c, e.counts);
  return c;
}

export function redactionMarker(entity: string): string {
  return `[REDACTED:${entity}]`;
}

/** Overlapping matches (two detectors, or canary windows) collapse to the earliest, then longest, span. */
export function resolveMatches(matches: Match[]): Match[] {
  matches.sort((a, b) => a.start - b.start || b.end - a.end);
  const kept: Match[] = [];
  let end = -1;
  for (const m of matches) {
    if (m.start >= end) {
      kept.push(m);
      end = m.end;
    }
  }
  return kept;
}

/**
 * Adds `candidates` to `accepted` (both sorted, non-overlapping) wherever they do not overlap an
 * accepted edit: findings from an outer layer win over a decoded view of the same bytes.
 */
export function mergeEdits(accepted: Edit[], candidates: readonly Edit[]): Edit[] {
  if (candidates.length === 0) return accepted;
  if (accepted.length === 0) return [...candidates];
  const out: Edit[] = [];
  let a = 0;
  for (const c of candidates) {
    while (a < accepted.length && accepted[a].end <= c.start) out.push(accepted[a++]);
    const overlapsNext = a < accepted.length && accepted[a].start < c.end;
    const overlapsPrev = out.length > 0 && out[out.length - 1].end > c.start;
    if (!overlapsNext && !overlapsPrev) out.push(c);
  }
  while (a < accepted.length) out.push(accepted[a++]);
  return out;
}

/** Applies sorted, non-overlapping edits. */
export function applyEdits(text: string, edits: readonly Edit[]): string {
  if (edits.length === 0) return text;
  let out = '';
  let at = 0;
  for (const e of edits) {
    out += text.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + text.slice(at);
}
