import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { compilePolicy } from './compile.js';
import type { RawPolicy } from './raw.js';
import { POLICY_SCHEMA } from './schema.js';
import { SchemaWalker } from './schema-walker.js';
import { checkSemantics } from './semantics.js';
import type { CompiledPolicy } from './types.js';

export interface ParseResult {
  /** Present when there is no error (warnings may remain). */
  policy: CompiledPolicy | undefined;
  problems: ConfigProblem[];
}

/** Parses, validates and compiles policy text. Never throws for bad input: problems say what is wrong. */
export function parsePolicy(text: string, file: string): ParseResult {
  const source = path.resolve(file);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const problems: ConfigProblem[] = [];
  for (const e of doc.errors.slice(0, 1)) {
    // Later YAML errors are usually consequences of the first; one precise message helps more.
    // `linePos` is only filled with prettyErrors; the offset is always there.
    const at = e.linePos?.[0] ?? (typeof e.pos?.[0] === 'number' ? lines.linePos(e.pos[0]) : { line: 1, col: 1 });
    problems.push({ file, line: at.line, col: at.col, message: `not valid YAML: ${e.message.split('\n')[0]}`, severity: 'error' });
  }
  if (problems.length) return { policy: undefined, problems };
  const walker = new SchemaWalker(file, lines);
  const raw = walker.walk(doc.contents, POLICY_SCHEMA, '') as RawPolicy | undefined;
  if (raw?.security_mesh) checkSemantics(raw, walker);
  problems.push(...walker.problems);
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  if (!raw || problems.some((p) => p.severity === 'error')) return { policy: undefined, problems };
  const hash = createHash('sha256').update(text).digest('hex');
  return { policy: compilePolicy(raw, source, hash), problems };
}

/** Reads and compiles a policy file, or throws ConfigError listing every problem. */
export async function loadPolicyFile(file: string): Promise<{ policy: CompiledPolicy; warnings: ConfigProblem[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const msg = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `cannot read file: ${(e as Error).message}`;
    throw new ConfigError([{ file, line: 1, col: 1, message: msg, severity: 'error' }]);
  }
  const { policy, problems } = parsePolicy(text, file);
  if (!policy) throw new ConfigError(problems.filter((p) => p.severity === 'error'));
  return { policy, warnings: problems };
}
