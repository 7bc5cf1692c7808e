import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { loadServices } from '../../src/envoy/protos.js';
import { mergePrometheusText, parseWorkerCount, WORKER_V8_FLAGS, workerExecArgv } from '../../src/server/workers.js';
import { envoyCheckRequest, type CheckResponseView } from '../support/envoy-check.js';
import { createMeshFixture, type MeshFixture } from '../support/mesh-fixture.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** One client per connection: a local subchannel pool stops grpc-js from sharing one connection. */
function connect(address: string): grpc.Client {
  return new (loadServices().Authorization)(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

function check(client: grpc.Client, req: unknown): Promise<CheckResponseView> {
  return new Promise((resolve, reject) =>
    (client as unknown as { Check: Function }).Check(req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err: Error | null, res: CheckResponseView) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

/** Admin Status over the same connection as `client` (a channel-sharing Admin client). */
function status(client: grpc.Client): Promise<number> {
  const admin = new (loadServices().Admin)('unused', grpc.credentials.createInsecure(), { channelOverride: client.getChannel() });
  return new Promise((resolve, reject) =>
    (admin as unknown as { Status: Function }).Status({}, (err: Error | null, res: { pid: number }) => (err ? reject(err) : resolve(res.pid))),
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('serve --workers 2', () => {
  let fx: MeshFixture;
  let child: ChildProcess;
  let grpcAddress = '';
  let adminPort = 0;
  const workerPids: number[] = [];
  let exited: Promise<number | null>;

  before(async () => {
    fx = await createMeshFixture();
    child = spawn(
      process.execPath,
      [CLI, 'serve', '--config', fx.policyFile, '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--no-init-keys', '--drain-delay', '2s', '--workers', '2'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cluster did not start: ${stderr}`)), 30_000);
      let buf = '';
      child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          let rec: { msg?: string; pid?: number; grpc?: string; admin?: string; workers?: number };
          try {
            rec = JSON.parse(line);
          } catch {
            continue;
          }
          if (rec.msg === 'worker ready' && rec.pid) workerPids.push(rec.pid);
          if (rec.msg === 'mesh-pep serving' && rec.workers === 2) {
            grpcAddress = rec.grpc!;
            adminPort = Number(rec.admin!.split(':').pop());
            clearTimeout(timer);
            resolve();
          }
        }
      });
      child.once('exit', () => reject(new Error(`server exited: ${stderr}`)));
    });
  });

  after(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await fx.cleanup();
  });

  it('runs two worker processes on one port; both answer Checks, and their records share one audit chain', async () => {
    assert.equal(workerPids.length, 2);
    assert.notEqual(workerPids[0], workerPids[1]);
    assert.ok(workerPids.every(alive));
    // Workers run with the V8 flags of WORKER_V8_FLAGS unless the operator set their own.
    for (const pid of workerPids) {
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      for (const flag of WORKER_V8_FLAGS) assert.ok(argv.includes(flag), `worker runs with ${flag}`);
    }
    assert.equal((await get(adminPort, '/readyz')).status, 200);

    const token = await fx.token({ agent: 'agent-w', role: 'RETRIEVER' });
    // The primary hands connections to the workers in turn, so eight connections reach both.
    const clients = Array.from({ length: 8 }, () => connect(grpcAddress));
    try {
      const answers = await Promise.all(clients.map((c) => check(c, envoyCheckRequest({ domain: 'agent_memory', token }))));
      assert.ok(answers.every((a) => a.status.code === 0));
      // Admin Status on the same connections names the process that answered: both workers did.
      const pids = await Promise.all(clients.map((c) => status(c)));
      assert.deepEqual([...new Set(pids)].sort(), [...workerPids].sort());
    } finally {
      for (const c of clients) c.close();
    }

    // agent_memory is FULL_MESH: an allow is answered only once its record is durable, so every one is
    // in the primary's file by now — the same file, and the same chain, as with one process.
    const file = fx.policy.audit.file;
    const checks = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; decision: string })
      .filter((r) => r.event === 'authz.check' && r.decision === 'allow');
    assert.equal(checks.length, 8);
    const chain = await verifyAuditChain(file);
    assert.equal(chain.ok, true, JSON.stringify(chain));
    assert.deepEqual(await readdir(path.dirname(file)), [path.basename(file)], 'no per-worker audit files');

    const metrics = (await get(adminPort, '/metrics')).body;
    assert.match(metrics, /^mesh_pep_workers_up 2$/m);
    assert.match(metrics, /^mesh_pep_decisions_total\{domain="agent_memory",decision="allow",reason="ok"\} 8$/m);
    // The audit series come from the primary, which writes the file.
    assert.match(metrics, /^mesh_pep_audit_records_total\{result="written"\} ([89]|\d\d+)$/m);
  });

  it('a worker that dies while serving is replaced in its slot; the audit chain stays whole', async () => {
    const victim = workerPids[0]!;
    process.kill(victim, 'SIGKILL');
    const deadline = Date.now() + 20_000;
    while (workerPids.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(workerPids.length, 3, 'no replacement worker reported ready');
    assert.ok(!alive(victim));
    let ready = await get(adminPort, '/readyz');
    while (ready.status !== 200 && Date.now() < deadline) ready = await get(adminPort, '/readyz');
    assert.equal(ready.status, 200);
    const token = await fx.token({ agent: 'agent-w', role: 'RETRIEVER' });
    const clients = Array.from({ length: 4 }, () => connect(grpcAddress));
    try {
      const answers = await Promise.all(clients.map((c) => check(c, envoyCheckRequest({ domain: 'agent_memory', token }))));
      assert.ok(answers.every((a) => a.status.code === 0));
    } finally {
      for (const c of clients) c.close();
    }
    assert.equal((await verifyAuditChain(fx.policy.audit.file)).ok, true);
    workerPids.splice(0, 1);
  });

  it('SIGHUP is forwarded: every worker reloads the policy', async () => {
    const reloads = async () => Number(/^mesh_pep_policy_reloads_total\{result="ok"\} (\d+)$/m.exec((await get(adminPort, '/metrics')).body)?.[1] ?? 0);
    const before = await reloads();
    child.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    let after = before;
    while (after < before + 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      after = await reloads();
    }
    assert.equal(after, before + 2);
  });

  it('SIGTERM drains both workers: readiness goes 503, calls are still answered, then exit 0', async () => {
    const client = connect(grpcAddress);
    const token = await fx.token({ agent: 'agent-w', role: 'RETRIEVER' });
    try {
      assert.equal((await check(client, envoyCheckRequest({ domain: 'agent_memory', token }))).status.code, 0);
      child.kill('SIGTERM');
      let ready = await get(adminPort, '/readyz');
      for (let i = 0; i < 50 && ready.status === 200; i++) ready = await get(adminPort, '/readyz');
      assert.equal(ready.status, 503);
      assert.equal((await check(client, envoyCheckRequest({ domain: 'agent_memory', token }))).status.code, 0);
    } finally {
      client.close();
    }
    assert.equal(await exited, 0);
    assert.ok(!workerPids.some(alive), 'a worker outlived the primary');
  });
});

describe('workers helpers', () => {
  it('adds the worker V8 flags unless the operator already set them', () => {
    const all = [...WORKER_V8_FLAGS];
    assert.deepEqual(all.slice(0, 2), ['--max-semi-space-size=8', '--min-semi-space-size=8']);
    const without = (...names: string[]) => all.filter((f) => !names.some((n) => f.startsWith(n)));
    assert.deepEqual(workerExecArgv([]), all);
    assert.deepEqual(workerExecArgv(['--enable-source-maps']), ['--enable-source-maps', ...all]);
    assert.deepEqual(workerExecArgv(['--max-semi-space-size=32']), ['--max-semi-space-size=32', ...without('--max-semi-space-size')]);
    assert.deepEqual(workerExecArgv(['--min-semi-space-size=2']), ['--min-semi-space-size=2', ...without('--min-semi-space-size')]);
    assert.deepEqual(workerExecArgv([], '--max_semi_space_size=4 --enable-source-maps'), without('--max-semi-space-size'));
    // An operator who wants pretenuring back says so in either spelling; a growth factor of their own wins.
    assert.deepEqual(workerExecArgv(['--allocation-site-pretenuring']), ['--allocation-site-pretenuring', ...without('--no-allocation-site-pretenuring')]);
    assert.deepEqual(workerExecArgv(['--heap_growing_percent=300']), ['--heap_growing_percent=300', ...without('--heap-growing-percent')]);
  });

  it('parses --workers', () => {
    assert.equal(parseWorkerCount('3'), 3);
    assert.ok(parseWorkerCount('auto') >= 1);
    for (const bad of ['0', '-1', '1.5', 'two', '']) assert.throws(() => parseWorkerCount(bad), RangeError);
  });

  it('sums metrics from several workers series by series', () => {
    const a = '# HELP m_total x\n# TYPE m_total counter\nm_total{d="a"} 2\nm_total{d="b"} 1\n# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n';
    const b = '# HELP m_total x\n# TYPE m_total counter\nm_total{d="a"} 3\n# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 4\nh_count 5\n';
    assert.equal(
      mergePrometheusText([a, b]),
      '# HELP m_total x\n# TYPE m_total counter\nm_total{d="a"} 5\nm_total{d="b"} 1\n# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 5\nh_count 6\n',
    );
  });
});
