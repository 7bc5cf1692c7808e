import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FileAuditSink } from '../src/audit/file-sink.js';
import type { AuditEvent } from '../src/audit/record.js';
import { createMetrics, type Metrics } from '../src/telemetry/metrics.js';

/**
 * `node dist/bench/audit-sink.js [WINDOW_MS...]` (default `0 2`): the durable audit sink on this
 * machine's disk, in process, for each group-commit window (`audit.group_commit_ms`):
 * - one writer at a low rate: a durable record every 5 ms, each awaited as a FULL_MESH allow waits for
 *   its record, so each finds the sink idle and waits for the window (mean, p99);
 * - 64 writers for 3 s, each awaiting its record and writing the next: records/s, records per
 *   `fdatasync` and the mean sync time.
 * The files go to a temp directory under $TMPDIR (the disk the figures describe).
 */
const WRITERS = 64;
const SECONDS = 3;

function event(i: number): AuditEvent {
  return {
    event: 'authz.check',
    decision_id: `bench-${i}`,
    domain: 'bench_full',
    tier: 'RETRIEVAL',
    decision: 'allow',
    reason: 'ok',
    agent: 'agent-7',
    role: 'RETRIEVER',
    target: 'memory.agents.svc/v1/memory/items',
    trace_id: '80f198ee56343ba864fe8b2a57d3eff7',
    audit_level: 'FULL_MESH',
  };
}

function sample(metrics: Metrics, name: string): number {
  const line = metrics.registry.render().split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

async function run(windowMs: number): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-pep-audit-bench-'));
  const metrics = createMetrics();
  const sink = await FileAuditSink.open({ file: path.join(dir, 'audit.jsonl'), maxFileBytes: 1 << 30, groupCommitMs: windowMs }, { metrics });
  try {
    const one: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await sink.record(event(i), { durable: true });
      one.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
    one.sort((a, b) => a - b);
    const mean = one.reduce((a, b) => a + b, 0) / one.length;

    const syncs0 = sample(metrics, 'mesh_pep_audit_fsync_duration_seconds_count');
    const syncSum0 = sample(metrics, 'mesh_pep_audit_fsync_duration_seconds_sum');
    let written = 0;
    const end = performance.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, w) => {
        for (let i = 0; performance.now() < end; i++) {
          await sink.record(event(w * 1_000_000 + i), { durable: true });
          written++;
        }
      }),
    );
    const syncs = sample(metrics, 'mesh_pep_audit_fsync_duration_seconds_count') - syncs0;
    const syncMs = ((sample(metrics, 'mesh_pep_audit_fsync_duration_seconds_sum') - syncSum0) * 1000) / syncs;
    process.stdout.write(
      `group_commit_ms ${windowMs}: one writer every 5 ms ${mean.toFixed(2)} ms mean, ${one[Math.floor(one.length * 0.99)]!.toFixed(2)} ms p99; ` +
        `${WRITERS} writers ${Math.round(written / SECONDS)} records/s, ${(written / syncs).toFixed(1)} records per fdatasync, mean sync ${syncMs.toFixed(2)} ms\n`,
    );
  } finally {
    await sink.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const windows = process.argv.slice(2).map(Number).filter((n) => Number.isFinite(n) && n >= 0);
for (const w of windows.length ? windows : [0, 2]) await run(w);
