import assert from 'node:assert/strict';
import { readFile, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { FileAuditSink } from '../../src/audit/file-sink.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { checkEvent, tempAudit } from './fixtures.js';

async function lines(path: string): Promise<Array<Record<string, string>>> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, string>);
}

async function writeRotated(t: Awaited<ReturnType<typeof tempAudit>>, n: number): Promise<void> {
  const sink = await FileAuditSink.open(t.settings);
  // Sequential groups, so each group decides rotation on its own.
  for (let i = 0; i < n; i++) await sink.record(checkEvent(i), { durable: true });
  await sink.close();
}

test('rotation by size keeps one chain across files, oldest first', async () => {
  const t = await tempAudit({ maxFileBytes: 2000 });
  try {
    await writeRotated(t, 30);
    const names = (await readdir(dirname(t.settings.file))).sort();
    const base = basename(t.settings.file);
    assert.ok(names.length >= 4, `expected several files, got ${names.join(', ')}`);
    assert.ok(names.includes(`${base}.1`) && names.includes(`${base}.2`) && names.includes(base));

    const r = await verifyAuditChain(t.settings.file);
    assert.equal(r.ok, true, JSON.stringify(r));
    if (r.ok) {
      assert.equal(r.records, 30);
      assert.equal(r.files.length, names.length);
      assert.equal(r.files.at(-1), t.settings.file);
    }
    // The first line of a rotated-to file links to the last line of the file before it.
    const one = await lines(`${t.settings.file}.1`);
    const two = await lines(`${t.settings.file}.2`);
    assert.equal(two[0]!.prev_hash, one.at(-1)!.hash);
    // Every decision is present exactly once, in order.
    const all: string[] = [];
    for (const f of r.ok ? r.files : []) all.push(...(await lines(f)).map((x) => x.decision_id!));
    assert.deepEqual(all, Array.from({ length: 30 }, (_, i) => checkEvent(i).decision_id));
  } finally {
    await t.cleanup();
  }
});

test('a missing rotated file or a wrong file order breaks the link at the next file', async () => {
  const t = await tempAudit({ maxFileBytes: 2000 });
  try {
    await writeRotated(t, 30);
    const f = t.settings.file;
    const swapped = await verifyAuditChain([`${f}.2`, `${f}.1`], { partial: true });
    assert.equal(swapped.ok, false);
    if (!swapped.ok) {
      assert.equal(swapped.file, `${f}.1`);
      assert.equal(swapped.line, 1);
    }
    await rm(`${f}.2`);
    const gap = await verifyAuditChain(f);
    assert.equal(gap.ok, false);
    if (!gap.ok) {
      assert.equal(gap.file, `${f}.3`);
      assert.equal(gap.line, 1);
      assert.match(gap.reason, /does not link/);
    }
  } finally {
    await t.cleanup();
  }
});

test('after a crash between rename and the first write, open continues from the newest rotated file', async () => {
  const t = await tempAudit({ maxFileBytes: 2000 });
  try {
    await writeRotated(t, 12);
    const rotated = (await readdir(dirname(t.settings.file))).filter((n) => /\.\d+$/.test(n)).length;
    const moved = join(dirname(t.settings.file), `${basename(t.settings.file)}.${rotated + 1}`);
    await rename(t.settings.file, moved);
    const last = (await lines(moved)).at(-1)!.hash;

    const sink = await FileAuditSink.open(t.settings);
    assert.equal(sink.head, last);
    await sink.record(checkEvent(12), { durable: true });
    await sink.close();
    assert.equal((await lines(t.settings.file))[0]!.prev_hash, last);
    const r = await verifyAuditChain(t.settings.file);
    assert.equal(r.ok, true, JSON.stringify(r));
    if (r.ok) assert.equal(r.records, 13);
  } finally {
    await t.cleanup();
  }
});
