import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { FileAuditSink } from '../../src/audit/file-sink.js';
import { AuditIpcWriter } from '../../src/audit/ipc-writer.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { tempAudit } from './fixtures.js';

const CHILD = fileURLToPath(new URL('./ipc-child.js', import.meta.url));

interface Worker {
  child: ChildProcess;
  ask(cmd: object): Promise<Record<string, unknown>>;
  /** Stop passing this worker's audit batches to the writer (a primary that hangs, then dies). */
  ignoreAudit(): void;
}

/** A child process playing a cluster worker, its IPC channel served by `writer` as the primary does. */
function startWorker(writer: AuditIpcWriter): Worker {
  const child = fork(CHILD, [], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const answers: ((m: Record<string, unknown>) => void)[] = [];
  let serve = true;
  child.on('message', (m) => {
    if ((m as { mesh?: string }).mesh === 'audit' && !serve) return;
    if (writer.handle(child, m)) return;
    if ((m as { test?: string }).test === 'result') answers.shift()?.(m as Record<string, unknown>);
  });
  child.once('exit', () => writer.forget(child));
  return {
    child,
    ask: (cmd) =>
      new Promise((resolve) => {
        answers.push(resolve);
        child.send(cmd);
      }),
    ignoreAudit: () => (serve = false),
  };
}

async function records(file: string): Promise<{ decision_id: string; ts: string }[]> {
  return (await readFile(file, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { decision_id: string; ts: string });
}

describe('audit over IPC (cluster workers → the primary\'s one chain)', () => {
  it('two workers\' durable and non-durable records land in one valid chain, each worker\'s in its order', async () => {
    const t = await tempAudit();
    const sink = await FileAuditSink.open(t.settings);
    const writer = new AuditIpcWriter(sink);
    const a = startWorker(writer);
    const b = startWorker(writer);
    try {
      const [ra, rb] = await Promise.all([
        a.ask({ test: 'record', from: 1000, count: 300, durable: true }),
        b.ask({ test: 'record', from: 2000, count: 300, durable: true }),
      ]);
      assert.deepEqual([ra.ok, ra.errors, rb.ok, rb.errors], [300, [], 300, []]);
      // A durable record resolves only once it is on disk: all 600 are in the file now.
      let recs = await records(t.settings.file);
      assert.equal(recs.length, 600);

      const [na, nb] = await Promise.all([
        a.ask({ test: 'record', from: 3000, count: 50, durable: false }),
        b.ask({ test: 'record', from: 4000, count: 50, durable: false }),
      ]);
      assert.equal(na.ok, 50);
      assert.equal(nb.ok, 50);
      // close() waits until the primary answered everything the worker sent.
      await Promise.all([a.ask({ test: 'close' }), b.ask({ test: 'close' })]);
      await sink.close();

      recs = await records(t.settings.file);
      assert.equal(recs.length, 700);
      const ids = recs.map((r) => Number(r.decision_id.slice(4)));
      for (const base of [1000, 2000, 3000, 4000]) {
        const mine = ids.filter((n) => n >= base && n < base + 1000);
        assert.deepEqual(mine, [...mine].sort((x, y) => x - y), `records from ${base} kept their order`);
      }
      assert.ok(recs.every((r) => !Number.isNaN(Date.parse(r.ts))));
      assert.equal((await verifyAuditChain(t.settings.file)).ok, true);
    } finally {
      a.child.kill();
      b.child.kill();
      await t.cleanup();
    }
  });

  it('a failed write rejects the worker\'s durable records with audit_unavailable and turns every worker unhealthy', { skip: !existsSync('/dev/full') }, async () => {
    const t = await tempAudit();
    await mkdir(dirname(t.settings.file), { recursive: true });
    await symlink('/dev/full', t.settings.file);
    const sink = await FileAuditSink.open(t.settings);
    const writer = new AuditIpcWriter(sink);
    const a = startWorker(writer);
    const b = startWorker(writer);
    try {
      // b has talked to the primary once, so the primary knows to tell it about health.
      await b.ask({ test: 'record', from: 1, count: 1, durable: false });
      const r = await a.ask({ test: 'record', from: 10, count: 5, durable: true });
      assert.equal(r.ok, 0);
      assert.equal((r.errors as string[]).length, 5);
      assert.ok((r.errors as string[]).every((e) => /^audit_unavailable: .*ENOSPC/.test(e)), String(r.errors));
      assert.equal(r.healthy, false);
      let hb = await b.ask({ test: 'health' });
      for (let i = 0; i < 50 && hb.healthy !== false; i++) hb = await b.ask({ test: 'health' });
      assert.equal(hb.healthy, false);

      // The disk recovers: the next write succeeds and both turn healthy again.
      await unlink(t.settings.file);
      const ok = await a.ask({ test: 'record', from: 20, count: 3, durable: true });
      assert.deepEqual([ok.ok, ok.healthy], [3, true]);
      hb = await b.ask({ test: 'health' });
      for (let i = 0; i < 50 && hb.healthy !== true; i++) hb = await b.ask({ test: 'health' });
      assert.equal(hb.healthy, true);
      assert.equal((await verifyAuditChain(t.settings.file)).ok, true);
    } finally {
      a.child.kill();
      b.child.kill();
      await sink.close();
      await t.cleanup();
    }
  });

  it('when the primary is gone, waiting durable records are rejected and new ones refused (fail closed)', async () => {
    const t = await tempAudit();
    const sink = await FileAuditSink.open(t.settings);
    const w = startWorker(new AuditIpcWriter(sink));
    try {
      assert.equal((await w.ask({ test: 'record', from: 1, count: 2, durable: true })).ok, 2);
      w.ignoreAudit();
      assert.equal((await w.ask({ test: 'start-pending', count: 3 })).started, 3);
      let out = '';
      w.child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise((r) => w.child.once('exit', r));
      w.child.disconnect();
      await exited;
      assert.deepEqual(JSON.parse(out), { waiting: ['audit_unavailable', 'audit_unavailable', 'audit_unavailable'], later: 'audit_unavailable', healthy: false });
    } finally {
      w.child.kill();
      await sink.close();
      await t.cleanup();
    }
  });
});

describe('the primary\'s writer with malformed batches', () => {
  it('never throws: malformed durable records fail their index, malformed others are dropped, good ones are written', async () => {
    const t = await tempAudit();
    const sink = await FileAuditSink.open(t.settings);
    const writer = new AuditIpcWriter(sink);
    const replies: unknown[] = [];
    const channel = { send: (m: unknown, cb: (e: Error | null) => void) => (replies.push(m), cb(null), true) };
    try {
      assert.equal(writer.handle(channel, { mesh: 'not-audit' }), false);
      assert.equal(writer.handle(channel, { mesh: 'audit', batch: 'x', records: 'nope' }), true);
      const good = { event: { event: 'authz.check', decision_id: 'dec-ok', domain: null, tier: null, decision: 'deny', reason: 'no_policy', agent: null, role: null, target: null, trace_id: null, audit_level: null }, at: Date.now(), durable: true };
      assert.equal(
        writer.handle(channel, { mesh: 'audit', batch: 7, records: [null, { event: 5, durable: true }, { event: null, durable: false }, good, { event: good.event, at: 'soon', durable: true }] }),
        true,
      );
      assert.equal(writer.handle(channel, { mesh: 'audit', batch: 8, records: [good] }), true);
      for (let i = 0; i < 100 && replies.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 20));
      // Both batches went to disk in one group commit, so their answers share one message.
      assert.deepEqual(replies, [
        { mesh: 'audit-done', batches: [{ batch: 7, failed: [1], error: 'malformed audit record from a worker' }, { batch: 8 }], healthy: true },
      ]);
      await sink.close();
      const lines = (await readFile(t.settings.file, 'utf8')).trim().split('\n');
      assert.equal(lines.length, 3, 'the good records and the one with a bad time (stamped now) are written');
      assert.equal((await verifyAuditChain(t.settings.file)).ok, true);
    } finally {
      await sink.close();
      await t.cleanup();
    }
  });
});
