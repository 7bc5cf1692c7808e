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
export async function rotateOctKeyring(
  file: string,
  now = new Date(),
  pruneOlderThanMs?: number,
): Promise<{ kid: string; keys: number; pruned: string[] }> {
  const text = await readIfPresent(file);
  if (text === undefined) throw new Error(`keyring ${file} does not exist (run \`mesh-pep keys init\` first)`);
  await parseKeyring(file, text, ['oct']);
  const doc = JSON.parse(text) as { keys: Array<{ kid?: unknown }> };
  const key = newOctKey(now);
  const { kept, pruned } = pruneOlderThanMs === undefined ? { kept: doc.keys, pruned: [] } : pruneKeys(doc.keys, now.getTime() - pruneOlderThanMs);
  const keys = [...kept, key];
  await writeKeyringAtomic(file, keys);
  return { kid: key.kid, keys: keys.length, pruned };
}

/** Creation time of a key from its kid (`20261128T063000Z-…`, as newOctKey writes it), else undefined. */
export function keyCreatedAt(kid: unknown): number | undefined {
  if (typeof kid !== 'string') return undefined;
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-/.exec(kid);
  if (!m) return undefined;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Drops keys created before `cutoffMs`. Keyrings only grow under rotation (every 10 minutes by default,
 * about 150 bytes a key: a Secret's 1 MiB in about seven weeks), so old keys must go once nothing
 * encrypted under them is still kept. A key whose kid carries no creation time (imported by hand) is kept:
 * its age is unknown, and removing it could make stored ciphertext unreadable.
 */
export function pruneKeys<K extends { kid?: unknown }>(keys: readonly K[], cutoffMs: number): { kept: K[]; pruned: string[] } {
  const kept: K[] = [];
  const pruned: string[] = [];
  for (const k of keys) {
    const created = keyCreatedAt(k.kid);
    if (created !== undefined && created < cutoffMs) pruned.push(String(k.kid));
    else kept.push(k);
  }
  return { kept, pruned };
}
