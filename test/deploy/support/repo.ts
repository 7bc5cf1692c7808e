import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parseDocument } from 'yaml';

/** Repository root, found from this file (works from both test/ and dist/test/). */
export const REPO_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above the test folder');
    dir = parent;
  }
  return dir;
})();

export function repoPath(...parts: string[]): string {
  return path.join(REPO_ROOT, ...parts);
}

export function readRepoFile(...parts: string[]): string {
  return fs.readFileSync(repoPath(...parts), 'utf8');
}

/** Parses one YAML document strictly: duplicate keys and syntax errors throw with the file name. */
export function parseYaml(text: string, source: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
  return doc.toJS();
}

/** Parses a multi-document YAML stream, dropping empty documents (as kubectl and helm do). */
export function parseYamlStream(text: string, source: string): unknown[] {
  const out: unknown[] = [];
  for (const doc of parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true })) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

export function readYaml(...parts: string[]): unknown {
  return parseYaml(readRepoFile(...parts), parts.join('/'));
}

export type Json = Record<string, unknown>;

export function asObject(value: unknown, what: string): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as Json;
}

export function asArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${what} is not a list`);
  return value;
}

/**
 * Follows a path of object keys and list indexes, failing with the path when something is missing. A string
 * path is split on dots; pass a list when a key itself contains dots (Envoy filter names).
 */
export function dig(value: unknown, route: string | readonly string[]): unknown {
  const parts = typeof route === 'string' ? route.split('.') : route;
  const dotted = parts.join(' > ');
  let node = value;
  for (const part of parts) {
    if (Array.isArray(node) && /^\d+$/.test(part)) node = node[Number(part)];
    else if (node !== null && typeof node === 'object' && !Array.isArray(node)) node = (node as Json)[part];
    else throw new Error(`cannot follow "${dotted}": "${part}" is not reachable`);
    if (node === undefined) throw new Error(`cannot follow "${dotted}": "${part}" is missing`);
  }
  return node;
}
