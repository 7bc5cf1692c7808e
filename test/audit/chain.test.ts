import assert from 'node:assert/strict';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { canonicalJson, GENESIS_HASH, recordHash } from '../../src/audit/canonical.js';
import { AuditUnavailableError, FileAuditSink } from '../../src/audit/file-sink.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { checkEvent, tempAudit } from './fixtures.js';

async function writeRecords(n: number) {
  const t = await tempAudit();
  const sink = await FileAuditSink.open(t.settings, { now: () => Date.UTC(2026, 0, 2, 3, 4, 5) });
  await Promise.all(Array.from({ length: n }, (_, i) => sink.record(checkEvent(i), { durable: true })));
  await sink.close();
  const lines = (await readFile(t.settings.file, 'utf8')).split('\n').slice(0, -1);
  return { ...t, lines };
}

test('records are canonical JSON lines chained from genesis, and verify', async () => {
  const t = await writeRecords(10);
  try {
    assert.equal(t.lines.length, 10);
    const recs = t.lines.map((l) => JSON.parse(l) as Record<string, string>);
    assert.equal(recs[0]!.prev_hash, GENESIS_HASH);
    for (let i = 0; i < recs.length; i++) {
      const { hash, ...rest } = recs[i]!;
      assert.equal(hash, recordHash(rest));
      assert.equal(t.lines[i], canonicalJson(recs[i]));
      if (i > 0) assert.equal(recs[i]!.prev_hash, recs[i - 1]!.hash);
      assert.equal(recs[i]!.ts, '2026-01-02T03:04:05.000Z');
      assert.equal(recs[i]!.decision_id, `dec-${i.toString().padStart(6, '0')}`);
    }
    const r = await verifyAuditChain(t.settings.file);
    assert.deepEqual(r, { ok: true, records: 10, files: [t.settings.file], head: recs[9]!.hash, start: GENESIS_HASH });
  } finally {
    await t.cleanup();
  }
});

test('a flipped byte anywhere in a line is reported at that line', async () => {
  const t = await writeRecords(6);
  try {
    const original = await readFile(t.settings.file);
    const lineStarts = [0];
    for (let i = 0; i < original.length - 1; i++) if (original[i] === 0x0a) lineStarts.push(i + 1);
    // A byte in a value, in a key, in prev_hash and in hash, on different lines.
    const cases: Array<{ line: number; offsetInLine: (l: string) => number }> = [
      { line: 2, offsetInLine: (l) => l.indexOf('agent-') + 6 },
      { line: 3, offsetInLine: (l) => l.indexOf('"decision"') + 3 },
      { line: 4, offsetInLine: (l) => l.indexOf('"prev_hash"') + 20 },
      { line: 6, offsetInLine: (l) => l.indexOf('"hash"') + 12 },
      { line: 1, offsetInLine: (l) => l.length - 1 },
    ];
    for (const c of cases) {
      const buf = Buffer.from(original);
      const lineText = t.lines[c.line - 1]!;
      const at = lineStarts[c.line - 1]! + c.offsetInLine(lineText);
      buf[at] = buf[at]! ^ 0x01;
      await writeFile(t.settings.file, buf);
      const r = await verifyAuditChain(t.settings.file);
      assert.equal(r.ok, false, `flip on line ${c.line}`);
      if (!r.ok) {
        assert.equal(r.line, c.line, r.reason);
        assert.equal(r.file, t.settings.file);
      }
    }
  } finally {
    await t.cleanup();
  }
});

test('a deleted line is reported at the line that follows it', async () => {
  const t = await writeRecords(6);
  try {
    await writeFile(t.settings.file, [...t.lines.slice(0, 2), ...t.lines.slice(3)].join('\n') + '\n');
    const r = await verifyAuditChain(t.settings.file);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.line, 3);
      assert.match(r.reason, /prev_hash does not link/);
    }
  } finally {
    await t.cleanup();
  }
});

test('reordered lines are reported', async () => {
  const t = await writeRecords(6);
  try {
    const swapped = [...t.lines];
    [swapped[3], swapped[4]] = [swapped[4]!, swapped[3]!];
    await writeFile(t.settings.file, swapped.join('\n') + '\n');
    const r = await verifyAuditChain(t.settings.file);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.line, 4);
  } finally {
    await t.cleanup();
  }
});

test('deleting the first line is caught (the chain must start at genesis) unless --partial', async () => {
  const t = await writeRecords(4);
  try {
    await writeFile(t.settings.file, t.lines.slice(1).join('\n') + '\n');
    const r = await verifyAuditChain(t.settings.file);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.line, 1);
      assert.match(r.reason, /genesis/);
    }
    const p = await verifyAuditChain(t.settings.file, { partial: true });
    assert.equal(p.ok, true);
    if (p.ok) {
      assert.equal(p.records, 3);
      assert.equal(p.start, JSON.parse(t.lines[0]!).hash);
    }
  } finally {
    await t.cleanup();
  }
});

test('a torn last line fails verify; reopening cuts it off and continues the chain', async () => {
  const t = await writeRecords(3);
  try {
    await appendFile(t.settings.file, '{"decision":"allow","decision_id":"dec-torn');
    const torn = await verifyAuditChain(t.settings.file);
    assert.equal(torn.ok, false);
    if (!torn.ok) assert.equal(torn.line, 4);

    const sink = await FileAuditSink.open(t.settings);
    await sink.record(checkEvent(3), { durable: true });
    await sink.close();
    const r = await verifyAuditChain(t.settings.file);
    assert.equal(r.ok, true);
    if (r.ok) assert.equal(r.records, 4);
  } finally {
    await t.cleanup();
  }
});

test('reopening continues the chain from the last line', async () => {
  const t = await writeRecords(3);
  try {
    const last = JSON.parse(t.lines[2]!).hash as string;
    const sink = await FileAuditSink.open(t.settings);
    assert.equal(sink.head, last);
    await sink.record(checkEvent(100), { durable: true });
    await sink.close();
    const lines = (await readFile(t.settings.file, 'utf8')).split('\n').slice(0, -1);
    assert.equal(JSON.parse(lines[3]!).prev_hash, last);
    assert.equal((await verifyAuditChain(t.settings.file)).ok, true);
  } finally {
    await t.cleanup();
  }
});

test('a tampered last line makes open refuse rather than extend a broken chain', async () => {
  const t = await writeRecords(3);
  try {
    const bad = t.lines[2]!.replace('"allow"', '"deny"');
    await writeFile(t.settings.file, [...t.lines.slice(0, 2), bad].join('\n') + '\n');
    await assert.rejects(FileAuditSink.open(t.settings), (err: unknown) => {
      assert.ok(err instanceof AuditUnavailableError);
      assert.equal(err.code, 'audit_unavailable');
      assert.match(err.message, /audit verify/);
      return true;
    });
  } finally {
    await t.cleanup();
  }
});

test('verify reports a missing file and a directory, and an empty file verifies with 0 records', async () => {
  const t = await tempAudit();
  try {
    const dir = await verifyAuditChain([t.dir]);
    assert.equal(dir.ok, false);
    if (!dir.ok) assert.match(dir.reason, /EISDIR/);
    const missing = await verifyAuditChain([t.settings.file]);
    assert.equal(missing.ok, false);
    if (!missing.ok) assert.match(missing.reason, /ENOENT/);
    const sink = await FileAuditSink.open(t.settings);
    await sink.close();
    const empty = await verifyAuditChain(t.settings.file);
    assert.equal(empty.ok, true);
    if (empty.ok) assert.equal(empty.records, 0);
  } finally {
    await t.cleanup();
  }
});
