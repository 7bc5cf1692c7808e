/**
 * `npm run soak [-- --seconds N] [--concurrency C] [--faults a,b,...]`: bounded Check load on 127.0.0.1
 * against a real `mesh-pep serve` process for a few minutes (default 180 s) while faults are injected
 * in a cycle, one every 8 s:
 * - `policy_garbage`: the policy file replaced by garbage, restored 1.5 s later;
 * - `jwks_outage`: the issuer JWKS endpoint answers 503 for 3 s;
 * - `audit_disk_full`: the audit directory (a small tmpfs mounted for the run; skipped when mounting is
 *   not permitted) filled to the last byte for 2 s, then freed;
 * - `stall`: the server stopped (SIGSTOP) for 1 s, what a hung disk under fdatasync looks like from
 *   Envoy's side;
 * - `sigkill_restart`: SIGKILL, then a restart (the audit file's torn tail is repaired on start).
 * Reports requests served, outcomes by reason, gRPC errors by code, server memory per process lifetime,
 * and audit records lost (allowed decisions without a record): that must be zero, the hash chain must
 * verify, every response must be a valid CheckResponse and SIGTERM must exit 0, or the exit code is 1.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdir, open, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { verifyAuditChain } from '../src/audit/verify.js';
import { envoyCheckRequest } from '../test/support/envoy-check.js';
import { createMeshFixture, type MeshFixture } from '../test/support/mesh-fixture.js';
import { exited, freePort, recordedDecisionIds, spawnServe, startLoad } from '../test/security/load.js';
import { rssMb } from './proc.js';

const ALL_FAULTS = ['policy_garbage', 'jwks_outage', 'audit_disk_full', 'stall', 'sigkill_restart'] as const;
type Fault = (typeof ALL_FAULTS)[number];

/** The server's resident memory, its cluster workers included. */
async function rssKiB(pid: number | undefined): Promise<number> {
  return pid === undefined ? 0 : Math.round((await rssMb(pid)).total * 1024);
}

/** A tmpfs for the audit directory, so "disk full" is a real ENOSPC; undefined when not permitted. */
function mountTmpfs(dir: string, megabytes: number): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

async function fillDisk(dir: string): Promise<string> {
  const filler = path.join(dir, 'filler.bin');
  const { bavail, bsize } = await statfs(dir);
  const fh = await open(filler, 'w');
  try {
    const chunk = Buffer.alloc(1024 * 1024);
    let left = bavail * bsize;
    while (left > 0) {
      try {
        await fh.write(chunk, 0, Math.min(chunk.length, left));
        left -= chunk.length;
      } catch {
        break; // ENOSPC: full to the last block
      }
    }
    for (;;) {
      try {
        await fh.write(Buffer.alloc(512));
      } catch {
        break;
      }
    }
  } finally {
    await fh.close();
  }
  return filler;
}

async function readyz(port: number): Promise<number> {
  return fetch(`http://127.0.0.1:${port}/readyz`).then(
    async (r) => (await r.text(), r.status),
    () => 0,
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '180' },
      concurrency: { type: 'string', default: '16' },
      faults: { type: 'string', default: ALL_FAULTS.join(',') },
    },
  });
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  if (!(seconds > 0) || !(concurrency > 0)) throw new Error('--seconds and --concurrency must be positive numbers');
  const wanted = values.faults!.split(',').filter(Boolean);
  for (const f of wanted) if (!(ALL_FAULTS as readonly string[]).includes(f)) throw new Error(`unknown fault "${f}" (known: ${ALL_FAULTS.join(', ')})`);

  const fx = await createMeshFixture();
  const auditDir = path.dirname(fx.policy.audit.file);
  await mkdir(auditDir, { recursive: true });
  const tmpfs = wanted.includes('audit_disk_full') && mountTmpfs(auditDir, Math.max(256, Math.ceil(seconds * 1.5)));
  const cycle = wanted.filter((f) => f !== 'audit_disk_full' || tmpfs) as Fault[];
  try {
    return await soak(fx, auditDir, cycle, wanted, seconds, concurrency);
  } finally {
    if (tmpfs) execFileSync('umount', ['-l', auditDir], { stdio: 'pipe' });
    await fx.cleanup();
  }
}

async function soak(fx: MeshFixture, auditDir: string, cycle: Fault[], wanted: string[], seconds: number, concurrency: number): Promise<number> {

  const jwksText = await readFile(fx.policy.identity.jwksFile!, 'utf8');
  const jwks = { down: false };
  const jwksServer: Server = createServer((_req, res) => {
    if (jwks.down) {
      res.statusCode = 503;
      res.end();
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(jwksText);
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', () => r()));
  const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
  const goodPolicy = (await readFile(fx.policyFile, 'utf8')).replace('jwks_file: keys/issuer.jwks.json', `jwks_uri: ${jwksUrl}`);
  await writeFile(fx.policyFile, goodPolicy);

  // Every fifth agent has a role the domain refuses, and every 50th request carries garbage: the load
  // mixes allows and denies as real traffic does.
  const tokens = await Promise.all(
    Array.from({ length: 32 }, (_, i) => fx.token({ agent: `soak-${i}`, role: i % 5 === 0 ? 'EXECUTOR' : 'RETRIEVER', ttlMs: (seconds + 600) * 1000 })),
  );
  const [grpcPort, adminPort] = [await freePort(), await freePort()];
  let child: ChildProcess = await spawnServe(fx.policyFile, grpcPort, adminPort);
  const load = startLoad(`127.0.0.1:${grpcPort}`, {
    concurrency,
    tokens,
    request: (i) => envoyCheckRequest({ token: i % 50 === 0 ? 'not-a-token' : tokens[i % tokens.length] }),
  });
  const faults: Record<string, number> = {};
  const observations: Record<string, unknown> = {};
  const memory: Array<{ life: number; startKiB: number; endKiB: number; maxKiB: number }> = [];
  let maxKiB = 0;
  // RSS right after start is mostly code and the heap's initial size; what matters is how far it
  // climbs under steady load, sampled every second per process lifetime.
  const sampler = setInterval(() => void rssKiB(child.pid).then((k) => (maxKiB = Math.max(maxKiB, k))), 1000);
  let life = 0;
  await sleep(3000);
  let startKiB = await rssKiB(child.pid);
  maxKiB = startKiB;
  const deadline = Date.now() + seconds * 1000;
  for (let n = 0; Date.now() < deadline && cycle.length > 0; n++) {
    await sleep(Math.min(8000, Math.max(0, deadline - Date.now())));
    if (Date.now() >= deadline) break;
    const fault = cycle[n % cycle.length]!;
    faults[fault] = (faults[fault] ?? 0) + 1;
    switch (fault) {
      case 'policy_garbage':
        await writeFile(fx.policyFile, 'security_mesh: {domains: [ {name: \u0000');
        await sleep(1500);
        await writeFile(fx.policyFile, goodPolicy);
        break;
      case 'jwks_outage':
        jwks.down = true;
        await sleep(3000);
        jwks.down = false;
        break;
      case 'audit_disk_full': {
        const before = load.stats.denied.audit_unavailable ?? 0;
        const filler = await fillDisk(auditDir);
        await sleep(2000);
        observations.readyz_while_disk_full = [...((observations.readyz_while_disk_full as number[]) ?? []), await readyz(adminPort)];
        await rm(filler);
        observations.audit_unavailable_denies = ((observations.audit_unavailable_denies as number) ?? 0) + (load.stats.denied.audit_unavailable ?? 0) - before;
        break;
      }
      case 'stall':
        child.kill('SIGSTOP');
        await sleep(1000);
        child.kill('SIGCONT');
        break;
      case 'sigkill_restart':
        memory.push({ life: life++, startKiB, endKiB: await rssKiB(child.pid), maxKiB });
        child.kill('SIGKILL');
        await exited(child);
        child = await spawnServe(fx.policyFile, grpcPort, adminPort);
        await sleep(2000);
        startKiB = await rssKiB(child.pid);
        maxKiB = startKiB;
        break;
    }
  }
  memory.push({ life: life++, startKiB, endKiB: await rssKiB(child.pid), maxKiB });
  clearInterval(sampler);
  child.kill('SIGTERM');
  const code = await exited(child);
  const stats = await load.stop();
  jwksServer.close();

  const chain = await verifyAuditChain(fx.policy.audit.file);
  const recorded = await recordedDecisionIds(fx.policy.audit.file);
  const lost = [...stats.allowedIds].filter((id) => !recorded.has(id)).length;
  const report = {
    seconds,
    concurrency,
    requests: stats.sent,
    answered: stats.allowed + Object.values(stats.denied).reduce((a, b) => a + b, 0),
    allowed: stats.allowed,
    denied_by_reason: stats.denied,
    grpc_errors_by_code: stats.errors,
    invalid_responses: stats.invalid,
    faults_injected: faults,
    faults_skipped: wanted.filter((f) => !cycle.includes(f as Fault)),
    observations,
    server_rss_kib_by_lifetime: memory,
    max_rss_growth_kib: Math.max(...memory.map((m) => m.maxKiB - m.startKiB)),
    audit_records: recorded.size,
    audit_files: chain.ok ? chain.files.length : undefined,
    audit_chain_ok: chain.ok,
    audit_records_lost: lost,
    sigterm_exit_code: code,
  };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  return lost === 0 && chain.ok && stats.invalid === 0 && code === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`soak failed: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
