import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../src/envoy/protos.js';
import { denyReason, envoyCheckRequest, type CheckResponseView } from '../support/envoy-check.js';
import { createMeshFixture, policyYaml, type MeshFixture } from '../support/mesh-fixture.js';

/**
 * Issue 17, finding 3: with `--workers 2` every worker is its own process. The same agent id presented
 * from two SPIFFE principals, each on a different worker, must still be detected (the primary holds
 * the shared-identity view), and a revocation must reach every worker within the revocation bound.
 */
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

const DOMAINS = `
    - name: agent_memory
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER, ORCHESTRATOR]
      metadata_masking: true
      audit_level: FULL_MESH
      match: {hosts: ["memory.agents.svc"]}
      deny_shared_identity: true
`;
const PRINCIPAL_A = 'spiffe://cluster.local/ns/agents/sa/retriever';
const PRINCIPAL_B = 'spiffe://cluster.local/ns/sandbox/sa/intruder';

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

/** The pid of the worker behind this client's connection (Admin Status on the same channel). */
function workerPid(client: grpc.Client): Promise<number> {
  const admin = new (loadServices().Admin)('unused', grpc.credentials.createInsecure(), { channelOverride: client.getChannel() });
  return new Promise((resolve, reject) =>
    (admin as unknown as { Status: Function }).Status({}, (err: Error | null, res: { pid: number }) => (err ? reject(err) : resolve(res.pid))),
  );
}

describe('guards across cluster workers (serve --workers 2)', () => {
  let fx: MeshFixture;
  let child: ChildProcess;
  let grpcAddress = '';
  const workerPids: number[] = [];
  /** Two clients whose connections landed on different workers. */
  let onFirst: grpc.Client;
  let onSecond: grpc.Client;
  const clients: grpc.Client[] = [];

  before(async () => {
    fx = await createMeshFixture(policyYaml(DOMAINS, '  revocation:\n    file: revoked.yaml\n'));
    await writeFile(path.join(fx.dir, 'revoked.yaml'), '');
    child = spawn(
      process.execPath,
      [CLI, 'serve', '--config', fx.policyFile, '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--no-init-keys', '--drain-delay', '0s', '--workers', '2'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cluster did not start: ${stderr}`)), 60_000);
      let buf = '';
      child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          let rec: { msg?: string; pid?: number; grpc?: string; workers?: number };
          try {
            rec = JSON.parse(line);
          } catch {
            continue;
          }
          if (rec.msg === 'worker ready' && rec.pid) workerPids.push(rec.pid);
          if (rec.msg === 'mesh-pep serving' && rec.workers === 2) {
            grpcAddress = rec.grpc!;
            clearTimeout(timer);
            resolve();
          }
        }
      });
      child.once('exit', () => reject(new Error(`server exited: ${stderr}`)));
    });
    // The primary hands connections to the workers in turn; find one client on each.
    const warm = await fx.token({ agent: 'agent-warmup', role: 'RETRIEVER' });
    const byPid = new Map<number, grpc.Client>();
    for (let i = 0; i < 8 && byPid.size < 2; i++) {
      const c = connect(grpcAddress);
      clients.push(c);
      await check(c, envoyCheckRequest({ token: warm, principal: PRINCIPAL_A }));
      const pid = await workerPid(c);
      if (!byPid.has(pid)) byPid.set(pid, c);
    }
    assert.equal(byPid.size, 2, 'connections reached both workers');
    [onFirst, onSecond] = [...byPid.values()] as [grpc.Client, grpc.Client];
  });

  after(async () => {
    for (const c of clients) c.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await fx?.cleanup();
  });

  it('one agent id from two principals, each on a different worker, is detected and denied', async () => {
    assert.notEqual(await workerPid(onFirst), await workerPid(onSecond));
    const token = await fx.token({ agent: 'agent-shared', role: 'RETRIEVER' });
    const first = await check(onFirst, envoyCheckRequest({ token, principal: PRINCIPAL_A }));
    assert.equal(first.status.code, 0, 'the first workload is allowed');
    // The second workload presents the same agent id on the other worker: the cluster has seen both.
    const second = await check(onSecond, envoyCheckRequest({ token, principal: PRINCIPAL_B }));
    assert.equal(denyReason(second), 'identity_mismatch');
    // The first workload is denied too while the identity is shared, on its own worker. The primary
    // pushed the news to that worker before it answered the second one; the IPC message and this
    // request travel different sockets, so allow the worker a few turns to read it.
    let again = await check(onFirst, envoyCheckRequest({ token, principal: PRINCIPAL_A }));
    for (let i = 0; i < 20 && denyReason(again) !== 'identity_mismatch'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      again = await check(onFirst, envoyCheckRequest({ token, principal: PRINCIPAL_A }));
    }
    assert.equal(denyReason(again), 'identity_mismatch');

    // One `identity.shared` record, written for the cluster (not one per worker, not none).
    const records = (await readFile(fx.policy.audit.file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; domain: string; decision: string });
    const flags = records.filter((r) => r.event === 'identity.shared');
    assert.deepEqual(flags.map((f) => [f.domain, f.decision]), [['agent_memory', 'deny']]);
    assert.ok(!(await readFile(fx.policy.audit.file, 'utf8')).includes(PRINCIPAL_B), 'principals are not written to the audit record');
  });

  it('a revocation reaches every worker within the revocation-file bound', async () => {
    const token = await fx.token({ agent: 'agent-revoked', role: 'RETRIEVER' });
    const req = () => envoyCheckRequest({ token, principal: PRINCIPAL_A });
    assert.equal((await check(onFirst, req())).status.code, 0);
    assert.equal((await check(onSecond, req())).status.code, 0);
    await writeFile(path.join(fx.dir, 'revoked.yaml'), 'agents: [agent-revoked]\n');
    // Each worker polls the file (1 s) itself; both must deny within a few polls, never only one.
    const deadline = Date.now() + 15_000;
    const revokedOn = async (c: grpc.Client) => {
      let reason = denyReason(await check(c, req()));
      while (reason !== 'revoked' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        reason = denyReason(await check(c, req()));
      }
      return reason;
    };
    assert.deepEqual(await Promise.all([revokedOn(onFirst), revokedOn(onSecond)]), ['revoked', 'revoked']);
  });
});
