import { open, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Rotated files are `<file>.<n>` with n = 1, 2, 3... in the order they were rotated out, so the
 * chain runs `<file>.1 → <file>.2 → … → <file>`. A rotation is a single rename, never a cascade of
 * renames, so a crash mid-rotation cannot leave two files with the same name or a gap.
 */
export interface RotatedFile {
  path: string;
  n: number;
}

export async function rotatedSiblings(file: string): Promise<RotatedFile[]> {
  const dir = dirname(file);
  const prefix = `${basename(file)}.`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: RotatedFile[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const suffix = name.slice(prefix.length);
    if (!/^[1-9][0-9]{0,8}$/.test(suffix)) continue;
    out.push({ path: join(dir, name), n: Number(suffix) });
  }
  return out.sort((a, b) => a.n - b.n);
}

export interface FileTail {
  size: number;
  /** The last newline-terminated line, without the newline; undefined when the file has none. */
  lastLine: string | undefined;
  /** Length of the file up to and including the last newline; bytes after it are a torn write. */
  completeBytes: number;
}

/** Audit lines are a few hundred bytes; a window this large always holds a whole one. */
const TAIL_WINDOW = 256 * 1024;

export async function readTail(path: string): Promise<FileTail | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const { size } = await fh.stat();
    if (size === 0) return { size, lastLine: undefined, completeBytes: 0 };
    const start = Math.max(0, size - TAIL_WINDOW);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const lastNl = buf.lastIndexOf(0x0a);
    if (lastNl < 0) {
      if (start > 0) throw new Error(`audit file ${path}: no line break in the last ${TAIL_WINDOW} bytes`);
      return { size, lastLine: undefined, completeBytes: 0 };
    }
    const prevNl = buf.lastIndexOf(0x0a, lastNl - 1);
    if (prevNl < 0 && start > 0) throw new Error(`audit file ${path}: last line longer than ${TAIL_WINDOW} bytes`);
    return {
      size,
      lastLine: buf.subarray(prevNl + 1, lastNl).toString('utf8'),
      completeBytes: start + lastNl + 1,
    };
  } finally {
    await fh.close();
  }
}
