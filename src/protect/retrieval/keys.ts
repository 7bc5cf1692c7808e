import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseKeyring } from '../keyring.js';

/**
 * RETRIEVAL keyrings on disk: `{"keys":[{kty:"oct",k,kid,alg:"A256KW",use:"enc"}, ...]}`, mode 0600.
 * The last key encrypts; rotation appends, so ciphertext written under older keys stays readable.
 */
export interface OctJwk {
  kty: 'oct';
  k: string;
  kid: string;
  alg: 'A256KW';
  use: 'enc';
}

/** A fresh 256-bit wrapping key. The kid is random (not derived from the secret) and sortable by date. */
export function newOctKey(now = new Date()): OctJwk {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return {
    kty: 'oct',
    k: randomBytes(32).toString('base64url'),
    kid: `${stamp}-${randomBytes(4).toString('hex')}`,
    alg: 'A256KW',
    use: 'enc',
  };
}

/** Writes the whole file next to its destination, then renames, so a reader never sees half a keyring. */
async function writeKeyringAtomic(file: string, keys: readonly object[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

async function readIfPresent(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Creates the keyring with one key when the file is missing; returns whether it wrote one. */
export async function ensureOctKeyring(file: string): Promise<boolean> {
  if ((await readIfPresent(file)) !== undefined) return false;
  await writeKeyringAtomic(file, [newOctKey()]);
  return true;
}

/**
 * Appends a new key (which becomes the encrypting key) and keeps every existing one for reading.
 * The existing file must parse as a valid oct keyring, so a damaged file is never silently replaced.
 */
export async function rotateOctKeyring(file: string, now = new Date()): Promise<{ kid: string; keys: number }> {
  const text = await readIfPresent(file);
  if (text === undefined) throw new Error(`keyring ${file} does not exist (run \`mesh-pep keys init\` first)`);
  await parseKeyring(file, text, ['oct']);
  const doc = JSON.parse(text) as { keys: object[] };
  const key = newOctKey(now);
  const keys = [...doc.keys, key];
  await writeKeyringAtomic(file, keys);
  return { kid: key.kid, keys: keys.length };
}
