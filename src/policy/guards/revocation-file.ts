import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import type { RawRevocationLists } from '../../config/raw.js';
import { REVOCATION_FILE_SCHEMA } from '../../config/schema.js';
import { SchemaWalker } from '../../config/schema-walker.js';
import type { RevocationLists } from '../../config/types.js';
import { ConfigError, type ConfigProblem } from '../../errors.js';

export const EMPTY_REVOCATION: RevocationLists = Object.freeze({ agents: new Set<string>(), tokenIds: new Set<string>(), keyIds: new Set<string>() });

/**
 * Parses a revocation file (`agents`, `token_ids`, `key_ids` lists, YAML or JSON). An empty file is an
 * empty list; anything else that is not exactly this shape is a ConfigError with line:col, and the
 * caller keeps the last good list.
 */
export function parseRevocationText(text: string, file: string): RevocationLists {
  if (text.trim() === '') return EMPTY_REVOCATION;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const problems: ConfigProblem[] = [];
  const first = doc.errors[0];
  if (first) {
    // `linePos` is only filled with prettyErrors; the offset is always there.
    const at = first.linePos?.[0] ?? (typeof first.pos?.[0] === 'number' ? lines.linePos(first.pos[0]) : { line: 1, col: 1 });
    problems.push({ file, line: at.line, col: at.col, message: `not valid YAML: ${first.message.split('\n')[0]}`, severity: 'error' });
    throw new ConfigError(problems);
  }
  const walker = new SchemaWalker(file, lines);
  const raw = walker.walk(doc.contents, REVOCATION_FILE_SCHEMA, '') as RawRevocationLists | undefined;
  const errors = walker.problems.filter((p) => p.severity === 'error');
  if (!raw || errors.length) throw new ConfigError(errors.length ? errors : [{ file, line: 1, col: 1, message: 'not a revocation list', severity: 'error' }]);
  return Object.freeze({ agents: new Set(raw.agents ?? []), tokenIds: new Set(raw.token_ids ?? []), keyIds: new Set(raw.key_ids ?? []) });
}

export async function readRevocationFile(file: string): Promise<RevocationLists> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError([{ file, line: 1, col: 1, message: code === 'ENOENT' ? 'revocation file not found' : `cannot read revocation file: ${(e as Error).message}`, severity: 'error' }]);
  }
  return parseRevocationText(text, file);
}
