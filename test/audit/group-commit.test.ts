import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { FileAuditSink } from '../../src/audit/file-sink.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { checkEvent, sample, tempAudit } from './fixtures.js';

const FSYNCS = 'mesh_pep_audit_fsync_duration_seconds_count';

test('concurrent durable records share one fdatasync', async () => {
  const t = await tempAudit({ groupCommitMs: 5 });
  const metrics = createMetrics();
  try {
    const sink = await FileAuditSink.open(t.settings, { metrics });
    // All issued in one tick, so all fall into the first group whatever the machine's speed.
    const pending = Array.from({ length: 500 }, (_, i) => sink.record(checkEvent(i), { durable: true }));
    assert.equal(sample(metrics.registry.render(), 'mesh_pep_audit_queue_depth'), 500);
    await Promise.all(pending);
    const text = metrics.registry.render();
    assert.equal(sample(text, FSYNCS), 1);
    assert.equal(sample(text, 'mesh_pep_audit_records_total{result="written"}'), 500);
    assert.equal(sample(text, 'mesh_pep_audit_queue_depth'), 0);
    await sink.close();
    const r = await verifyAuditChain(t.settings.file);
    assert.ok(r.ok && r.records === 500);
  } finally {
    await t.cleanup();
  }
});

test('records arriving over many ticks are grouped: fsyncs never exceed the ticks, and each durable record is on disk when it resolves', async () => {
  const t = await tempAudit({ groupCommitMs: 1 });
  const metrics = createMetrics();
  try {
    const sink = await FileAuditSink.open(t.settings, { metrics });
    const ticks = 40;
    const perTick = 25;
    const all: Promise<void>[] = [];
    for (let k = 0; k < ticks; k++) {
      for (let j = 0; j < perTick; j++) {
        const ev = checkEvent(k * perTick + j);
        all.push(
          sink.record(ev, { durable: true }).then(async () => {
            // Resolved means written and synced: the line is in the file now.
            const text = await readFile(t.settings.file, 'utf8');
            assert.ok(text.includes(`"decision_id":"${ev.decision_id}"`));
          }),
        );
      }
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    const fsyncs = sample(metrics.registry.render(), FSYNCS)!;
    assert.ok(fsyncs >= 1 && fsyncs <= ticks, `fsyncs=${fsyncs}`);
    await sink.close();
    const r = await verifyAuditChain(t.settings.file);
    assert.ok(r.ok && r.records === ticks * perTick);
  } finally {
    await t.cleanup();
  }
});

test('without a window (the default), records that arrive while a sync is in flight share the next one', async () => {
  const t = await tempAudit({ groupCommitMs: 0 });
  const metrics = createMetrics();
  try {
    const sink = await FileAuditSink.open(t.settings, { metrics });
    const first = sink.record(checkEvent(0), { durable: true });
    // The first record's group is being written; these 300, from 3 later turns, wait for it to finish.
    const later: Promise<void>[] = [];
    for (let k = 0; k < 3; k++) {
      await new Promise((r) => setImmediate(r));
      for (let j = 0; j < 100; j++) later.push(sink.record(checkEvent(1 + k * 100 + j), { durable: true }));
    }
    await Promise.all([first, ...later]);
    const fsyncs = sample(metrics.registry.render(), FSYNCS)!;
    assert.ok(fsyncs >= 2 && fsyncs <= 4, `301 records in ${fsyncs} fsyncs`);
    await sink.close();
    const r = await verifyAuditChain(t.settings.file);
    assert.ok(r.ok && r.records === 301);
  } finally {
    await t.cleanup();
  }
});

test('durable:false resolves once buffered and is written by the next group or by close()', async () => {
  const t = await tempAudit({ groupCommitMs: 60_000 });
  const metrics = createMetrics();
  try {
    const sink = await FileAuditSink.open(t.settings, { metrics });
    await sink.record(checkEvent(1), { durable: false });
    // Resolved while the (long) group window is still open: nothing is on disk yet.
    assert.equal(await readFile(t.settings.file, 'utf8'), '');
    assert.equal(sample(metrics.registry.render(), 'mesh_pep_audit_queue_depth'), 1);
    await sink.close();
    const r = await verifyAuditChain(t.settings.file);
    assert.ok(r.ok && r.records === 1);
    await assert.rejects(sink.record(checkEvent(2), { durable: true }), /closed/);
  } finally {
    await t.cleanup();
  }
});
