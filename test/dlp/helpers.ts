import { compileDlp, type DlpResult } from '../../src/dlp/index.js';
import type { DlpSettings } from '../../src/config/types.js';

/** Functional tests use a generous budget so a slow CI machine never turns a result into `truncated`. */
export const GENEROUS = { budgetMs: 60_000 };

export function scanner(settings: Partial<DlpSettings> = {}, opts = GENEROUS) {
  return compileDlp({ action: 'redact', entities: [], canaries: [], ...settings }, opts);
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function bytes(v: string | object): Uint8Array {
  return enc.encode(typeof v === 'string' ? v : JSON.stringify(v));
}

export function text(r: DlpResult): string {
  if (r.body === undefined) throw new Error(`expected a redacted body, got action ${r.action}`);
  return dec.decode(r.body);
}

/** Scans a plain-text body and returns the findings. */
export function findingsOf(s: string, settings: Partial<DlpSettings> = {}): Readonly<Record<string, number>> {
  return scanner(settings).scan(bytes(s), 'text/plain').findings;
}
