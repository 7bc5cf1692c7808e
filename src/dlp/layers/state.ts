import type { ScanBudget } from '../budget.js';
import type { Detector } from '../detector.js';
import type { DlpEntity } from '../entities.js';

/** What one scan carries through the layers: the compiled detectors, the enabled entities, the budget. */
export interface ScanState {
  readonly detectors: readonly Detector[];
  readonly enabled: ReadonlySet<DlpEntity>;
  readonly budget: ScanBudget;
  /** Shortest text that can hold a finding (6 for built-ins: `a@b.co`; 1 when canaries are configured). */
  readonly minLength: number;
  /**
   * The layers the current text sits in (`json`, `base64`, …), outermost first. Findings are counted
   * as `ENTITY@layer>layer` so a verdict can name where each one was (the scanner splits the key).
   */
  readonly trail: string[];
}

/** Runs `fn` one layer down, with `layer` on the trail. */
export function within<T>(state: ScanState, layer: string, fn: () => T): T {
  state.trail.push(layer);
  try {
    return fn();
  } finally {
    state.trail.pop();
  }
}

/**
 * How many encodings deep the scanner follows (JSON → string → base64 → JSON → …). Six covers a tool
 * call's JSON arguments holding a base64 attachment of URL-encoded text, with room to spare; deeper
 * nesting is scanned as text at the last level.
 */
export const MAX_DEPTH = 6;
