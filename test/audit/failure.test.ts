import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, symlink, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { AuditUnavailableError, FileAuditSink } from '../../src/audit/file-sink.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { checkEvent, sample, tempAudit } from './fixtures.js';

function captureLog() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8');
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), text: () => text };
}

// /dev/full fails every write with ENOSPC, as a full disk does; tests run as root, so permission
// bits could not make the write fail.
test('a failed write rejects the pending records, drops healthy, and a later good write restores it', { skip: !existsSync('/dev/full') }, async () => {
  const t = await tempAudit();
  const metrics = createMetrics();
  const cap = captureLog();
  try {
    await mkdir(dirname(t.settings.file), { recursive: true });
    await symlink('/dev/full', t.settings.file);
    const sink = await FileAuditSink.open(t.settings, { metrics, log: cap.log });
    assert.equal(sink.healthy, true);

    const marker = 'kb.internal/v1/records/PLANTED-7f3a9';
    const results = await Promise.allSettled([
      sink.record(checkEvent(1, { target: marker }), { durable: true }),
      sink.record(checkEvent(2, { target: marker }), { durable: true }),
    ]);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      if (r.status === 'rejected') {
        assert.ok(r.reason instanceof AuditUnavailableError);
        assert.equal(r.reason.code, 'audit_unavailable');
        assert.match(r.reason.message, /ENOSPC/);
      }
    }
    assert.equal(sink.healthy, false);
    assert.equal(sample(metrics.registry.render(), 'mesh_pep_audit_records_total{result="failed"}'), 2);
    assert.match(cap.text(), /audit write failed/);
    assert.ok(!cap.text().includes('PLANTED-7f3a9'), 'the log must not hold record contents');
    assert.ok(!cap.text().includes('dec-000001'), 'the log must not hold record contents');

    // Still broken: the path is now a directory, so reopening fails too.
    await unlink(t.settings.file);
    await mkdir(t.settings.file);
    await assert.rejects(sink.record(checkEvent(3), { durable: true }), AuditUnavailableError);
    assert.equal(sink.healthy, false);

    // The disk "recovers": the path can be a regular file again. The next group reopens it.
    await rmdir(t.settings.file);
    await sink.record(checkEvent(4), { durable: true });
    assert.equal(sink.healthy, true);
    await sink.close();
    const r = await verifyAuditChain(t.settings.file);
    assert.ok(r.ok && r.records === 1, JSON.stringify(r));
    // The rejected records were never chained: the surviving record starts at genesis.
    assert.equal(JSON.parse((await readFile(t.settings.file, 'utf8')).trim()).decision_id, 'dec-000004');
  } finally {
    await t.cleanup();
  }
});

test('an audit path that is a directory fails open with a clear error', async () => {
  const t = await tempAudit();
  try {
    await mkdir(t.settings.file, { recursive: true });
    await assert.rejects(FileAuditSink.open(t.settings), /EISDIR|illegal operation on a directory/);
  } finally {
    await t.cleanup();
  }
});

test('a full queue refuses at once instead of growing without bound', async () => {
  const t = await tempAudit({ groupCommitMs: 60_000 });
  try {
    const sink = await FileAuditSink.open(t.settings, { maxQueue: 3 });
    const ok = [1, 2, 3].map((i) => sink.record(checkEvent(i), { durable: true }));
    await assert.rejects(sink.record(checkEvent(4), { durable: true }), /queue is full/);
    await sink.close();
    await Promise.all(ok);
  } finally {
    await t.cleanup();
  }
});
