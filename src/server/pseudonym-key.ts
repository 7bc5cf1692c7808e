import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** The pseudonym secret is 32 random bytes stored base64url on one line. */
export async function readPseudonymKey(file: string): Promise<Uint8Array> {
  const text = (await readFile(file, 'utf8')).trim();
  const key = Buffer.from(text, 'base64url');
  if (key.length < 32) throw new Error(`pseudonym key ${file} must hold at least 32 bytes (base64url)`);
  return key;
}

export async function ensurePseudonymKey(file: string): Promise<string[]> {
  try {
    await readFile(file);
    return [];
  } catch {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
    return [file];
  }
}
