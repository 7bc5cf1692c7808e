/**
 * `npm run soak [-- --seconds N] [--concurrency C]`: bounded Check load on 127.0.0.1 against a real
 * `mesh-pep serve` process for a few minutes (default 180 s) while faults are injected in a cycle:
 * the policy file replaced by garbage and restored, the issuer JWKS endpoint down and back, the server
 * stalled (SIGSTOP/SIGCONT: what a hung disk under fdatasync looks like from Envoy's side), and SIGKILL
 * then restart (the audit file's torn tail is repaired on start). Reports requests served, outcomes and errors by kind, server memory growth, and
 * audit records lost (allowed decisions without a record): that number must be zero, and the audit
 * hash chain must verify, or the exit code is 1.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { verifyAuditChain } from '../src/audit/verify.js';
import { createMeshFixture } from '../test/support/mesh-fixture.js';
import { envoyCheckRequest } from '../test/support/envoy-check.js';
import { exited, freePort, recordedDecisionIds, spawnServe, startLoad } from '../test/security/load.js';

function rssKiB(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Promise.resolve(0);
  return readFile(`/proc/${pid}/status`, 'utf8').then(
    (s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0),
    () => 0,
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '180' }, concurrency: { type: 'string', default: '16' } } });
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  if (!(seconds > 0) || !(concurrency > 0)) throw new Error('--seconds and --concurrency must be positive numbers');

  const fx = await createMeshFixture();
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

  const tokens = await Promise.all(Array.from({ length: 32 }, (_, i) => fx.token({ agent: `soak-${i}`, role: i % 5 === 0 ? 'EXECUTOR' : 'RETRIEVER', ttlMs: (seconds + 600) * 1000 })));
  const [grpcPort, adminPort] = [await freePort(), await freePort()];
  let child: ChildProcess = await spawnServe(fx.policyFile, grpcPort, adminPort);
  const load = startLoad(`127.0.0.1:${grpcPort}`, {
    concurrency,
    tokens,
    request: (i) => envoyCheckRequest({ token: i % 50 === 0 ? 'not-a-token' : tokens[i % tokens.length] }),
  });
  const faults: Record<string, number> = {};
  const memory: Array<{ life: number; startKiB: number; endKiB: number; maxKiB: number }> = [];
  let maxKiB = 0;
  // RSS right after start is mostly code and the heap's initial size; the growth that matters is how
  // far it climbs under steady load, sampled every second per process lifetime.
  const sampler = setInterval(() => void rssKiB(child.pid).then((k) => (maxKiB = Math.max(maxKiB, k))), 1000);
  let life = 0;
  await sleep(3000);
  let startKiB = await rssKiB(child.pid);
  maxKiB = startKiB;
  const deadline = Date.now() + seconds * 1000;
  const cycle = ['policy_garbage', 'jwks_outage', 'stall', 'sigkill_restart'] as const;
  for (let n = 0; Date.now() < deadline; n++) {
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
    server_rss_kib_by_lifetime: memory,
    max_rss_growth_kib: Math.max(...memory.map((m) => m.maxKiB - m.startKiB)),
    audit_records: recorded.size,
    audit_files: chain.ok ? chain.files.length : undefined,
    audit_chain_ok: chain.ok,
    audit_records_lost: lost,
    sigterm_exit_code: code,
  };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  await fx.cleanup();
  return lost === 0 && chain.ok && stats.invalid === 0 && code === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`soak failed: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
