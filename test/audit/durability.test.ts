import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FileAuditSink } from '../../src/audit/file-sink.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { CheckClient, envoyCheckRequest, setHeaders } from '../support/envoy-check.js';
import { createMeshFixture, policyYaml } from '../support/mesh-fixture.js';

const mainJs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

/**
 * Durable before allowed, end to end: a real `mesh-pep serve` process under concurrent Check load is
 * killed with SIGKILL (no drain, no flush); every request the client saw allowed must have its
 * record in the audit file, and the chain must verify after the restart-time tail repair.
 */
test('SIGKILL under load loses no record of an allow the client saw', { timeout: 60_000 }, async () => {
  // A wide group-commit window makes "answered before written" lose records at the kill, so the test
  // would catch it; a small max size makes the load cross several rotations.
  const yaml = policyYaml().replace('    file: audit/audit.jsonl\n', '    file: audit/audit.jsonl\n    group_commit_ms: 150\n    max_file_bytes: 65536\n');
  assert.ok(yaml.includes('group_commit_ms: 150'));
  const fx = await createMeshFixture(yaml);
  const child = spawn(
    process.execPath,
    [mainJs, 'serve', '--config', fx.policyFile, '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--no-init-keys'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info', OTEL_TRACES_EXPORTER: 'none' } },
  );
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 30_000);
      child.once('exit', () => reject(new Error(`server exited: ${stderr}`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        try {
          const rec = JSON.parse(line) as { msg?: string; grpc?: string };
          if (rec.msg === 'mesh-pep serving' && rec.grpc) {
            clearTimeout(timer);
            resolve(Number(rec.grpc.slice(rec.grpc.lastIndexOf(':') + 1)));
          }
        } catch {
          // not a log line
        }
      });
    });

    const client = new CheckClient(`127.0.0.1:${port}`);
    const tokens = await Promise.all([1, 2, 3, 4].map((i) => fx.token({ agent: `retriever-${i}`, role: 'RETRIEVER' })));
    const allowed: string[] = [];
    let inFlightAtKill = 0;
    let inFlight = 0;
    let killed = false;
    const target = 300;
    const worker = async (w: number) => {
      for (let i = 0; !killed; i++) {
        inFlight++;
        try {
          const res = await client.check(envoyCheckRequest({ domain: 'agent_memory', token: tokens[(w + i) % tokens.length] }));
          if (res.status.code === 0) allowed.push(setHeaders(res).get('x-mesh-decision-id')!);
        } catch {
          return; // the server is gone
        } finally {
          inFlight--;
        }
        if (allowed.length >= target && !killed) {
          killed = true;
          inFlightAtKill = inFlight;
          child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 48 }, (_, w) => worker(w)));
    client.close();
    assert.equal(await exited, 'SIGKILL');
    assert.ok(allowed.length >= target, `only ${allowed.length} allows before the kill`);
    assert.ok(inFlightAtKill > 0, 'the kill happened under load');

    // What a restart does: open the sink (cuts a torn tail if the kill left one), then verify.
    const sink = await FileAuditSink.open(fx.policy.audit);
    await sink.close();
    const chain = await verifyAuditChain(fx.policy.audit.file);
    assert.equal(chain.ok, true, JSON.stringify(chain));
    const ids = new Set<string>();
    for (const f of chain.ok ? chain.files : []) {
      for (const line of (await readFile(f, 'utf8')).split('\n')) {
        if (line) ids.add((JSON.parse(line) as { decision_id: string }).decision_id);
      }
    }
    assert.ok(chain.ok && chain.files.length > 1, 'the load crossed a rotation');
    const missing = allowed.filter((id) => !ids.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${allowed.length} allowed decisions have no record`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    await fx.cleanup();
  }
});
