import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { canonicalJson, GENESIS_HASH, recordHash } from './canonical.js';
import { rotatedSiblings } from './chain-files.js';

export type VerifyResult =
  | {
      ok: true;
      records: number;
      /** The files checked, oldest first (rotated predecessors included when found). */
      files: string[];
      /** Hash of the last record: record it elsewhere to make a later truncation of the tail evident. */
      head: string;
      /** prev_hash of the first record checked; GENESIS_HASH unless `partial` accepted a later start. */
      start: string;
    }
  | { ok: false; file: string; line: number; reason: string };

export interface VerifyOptions {
  /**
   * Accept a chain whose first record does not link to genesis (older rotated files were pruned).
   * Off by default: otherwise deleting the first lines of a log would go unnoticed.
   */
  partial?: boolean;
}

const HASH_RE = /^[0-9a-f]{64}$/;

/**
 * Verifies the hash chain across `files` in order. A single path (string) is taken as the current
 * file: its rotated predecessors `<file>.1`, `<file>.2`, … found next to it are verified first. An
 * array is verified exactly as given, in that order.
 *
 * Every line must be canonical JSON (so any changed byte is caught, even one that keeps the JSON
 * equivalent), its `hash` must be the SHA-256 of the record without `hash`, and its `prev_hash` must
 * be the previous line's `hash` — across file boundaries too. A deleted or reordered line breaks the
 * link of the line after it, which is the line reported.
 */
export async function verifyAuditChain(files: string[] | string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const list = typeof files === 'string' ? [...(await rotatedSiblings(files)).map((r) => r.path), files] : files;
  let expected: string | undefined = opts.partial ? undefined : GENESIS_HASH;
  let start: string | undefined;
  let records = 0;
  for (const file of list) {
    try {
      await stat(file);
    } catch (err) {
      return { ok: false, file, line: 0, reason: `cannot read file (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
    }
    let lineNo = 0;
    try {
      for await (const item of lines(file)) {
        lineNo++;
        if (item.torn) return { ok: false, file, line: lineNo, reason: 'incomplete last line (no line break)' };
        const problem = checkLine(item.text, expected);
        if (typeof problem === 'string') return { ok: false, file, line: lineNo, reason: problem };
        start ??= problem.prev;
        expected = problem.hash;
        records++;
      }
    } catch (err) {
      return { ok: false, file, line: lineNo, reason: `cannot read file (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
    }
  }
  return { ok: true, records, files: list, head: expected ?? GENESIS_HASH, start: start ?? GENESIS_HASH };
}

function checkLine(text: string, expected: string | undefined): string | { hash: string; prev: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return 'not a JSON object';
  const rec = parsed as Record<string, unknown>;
  const { hash, prev_hash: prev } = rec;
  if (typeof hash !== 'string' || !HASH_RE.test(hash)) return 'missing or malformed hash';
  if (typeof prev !== 'string' || !HASH_RE.test(prev)) return 'missing or malformed prev_hash';
  if (canonicalJson(rec) !== text) return 'line is not in canonical form (modified)';
  const { hash: _omit, ...rest } = rec;
  if (recordHash(rest) !== hash) return 'hash does not match the record (modified)';
  if (expected !== undefined && prev !== expected) {
    return expected === GENESIS_HASH && prev !== GENESIS_HASH
      ? 'chain does not start at genesis (earlier files missing or first lines deleted; --partial accepts this)'
      : 'prev_hash does not link to the previous record (line deleted, inserted or reordered)';
  }
  return { hash, prev };
}

/** Lines split on LF; a final fragment without LF is reported as torn rather than silently accepted. */
async function* lines(file: string): AsyncGenerator<{ text: string; torn: boolean }> {
  let rest = '';
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 256 * 1024 })) {
    const parts = (rest + (chunk as string)).split('\n');
    rest = parts.pop()!;
    for (const text of parts) yield { text, torn: false };
  }
  if (rest.length) yield { text: rest, torn: true };
}
