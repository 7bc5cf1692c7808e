import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findH2load, runH2load, type LoadResult } from './h2load.js';
import { jsonBody } from './json-body.js';
import { loadPolicyFile } from '../src/config/load.js';
import { mintPolicyToken } from '../src/identity/dev-issuer.js';
import { WORKER_V8_FLAGS } from '../src/server/workers.js';
import { ensureEnvoy } from '../tools/envoy/binary.js';
import { connectionManager, readShipped, renderEnvoyConfig, type Json, type JsonObject } from '../tools/envoy/config.js';
import { freePort, MESH_PEP_MAIN } from '../tools/envoy/mesh-pep.js';
import { startEnvoy, validateEnvoyConfig, type RunningEnvoy } from '../tools/envoy/process.js';
import { BUNDLED_POLICY_FILE } from '../tools/envoy/stack.js';

/**
 * `npm run bench -- --envoy [--quick] [--json FILE]`: latency a real Envoy 1.40 adds in front of one
 * upstream, three ways, every Envoy config derived from the shipped envoy/envoy.yaml:
 *   direct  the shipped file with the ext_authz and ext_proc filters removed;
 *   authz   the shipped file with the ext_proc filter removed (Check only);
 *   full    the shipped file as is (Check, then ext_proc RETRIEVAL: the 4 KiB body becomes a JWE).
 * All three drop the HCM's `tracing` block: every row would otherwise export a span per request to a
 * collector, noise that is not mesh-pep's. All three send the same request: POST /coordination/tasks
 * (route `coordination`: a RETRIEVAL domain without masking, OUTPUT_ONLY audit) with a 4 KiB JSON body
 * and one cached credential, over HTTP/2 (h2load) to Envoy's listener.
 *
 * Fixed rate (1,000 rps, one connection, one request in flight) and saturation (4 connections × 16
 * streams), in paired rounds that alternate the order of the three Envoys, so drift in a shared
 * machine's load hits all of them. "Added" is a row's p50/p99 minus the direct row's in the same round;
 * the table gives the median over rounds and the range.
 */
const CONCURRENCY_MAX = { clients: 4, streams: 16 };
const FIXED_RPS = 1000;
const BODY_BYTES = 4096;
const ROUTE = '/coordination/tasks';

type Variant = 'direct' | 'authz' | 'full';
const VARIANTS: readonly Variant[] = ['direct', 'authz', 'full'];
const LABEL: Record<Variant, string> = {
  direct: 'Envoy → upstream (no mesh-pep)',
  authz: 'Envoy + ext_authz Check',
  full: 'Envoy + Check + ext_proc RETRIEVAL 4 KiB',
};

interface Options {
  quick: boolean;
  rounds: number;
  durationS: number;
  warmupS: number;
  json: string;
}

function parse(argv: string[], root: string): Options {
  const quick = argv.includes('--quick');
  const json = argv.includes('--json') ? argv[argv.indexOf('--json') + 1]! : path.join(root, 'bench/results/envoy-latest.json');
  return { quick, rounds: quick ? 1 : 3, durationS: quick ? 3 : 5, warmupS: 1, json };
}

/** The shipped bootstrap, pointed at this machine and reduced to what `variant` measures. */
export function benchEnvoyConfig(variant: Variant, ports: { pep: number; upstream: number }): JsonObject {
  const up = { host: '127.0.0.1', port: ports.upstream };
  return renderEnvoyConfig(readShipped(), {
    clusters: { mesh_pep: { host: '127.0.0.1', port: ports.pep }, jaeger_otlp: { host: '127.0.0.1', port: 9 }, orchestrator: up, retriever: up, analyst: up },
    patch: (cfg) => {
      const hcm = connectionManager(cfg);
      delete hcm.tracing;
      const drop = variant === 'direct' ? ['envoy.filters.http.ext_authz', 'envoy.filters.http.ext_proc'] : variant === 'authz' ? ['envoy.filters.http.ext_proc'] : [];
      const filters = hcm.http_filters as JsonObject[];
      const kept = filters.filter((f) => !drop.includes(String(f.name)));
      if (kept.length !== filters.length - drop.length) throw new Error(`shipped envoy.yaml lacks one of ${drop.join(', ')}`);
      hcm.http_filters = kept;
      if (variant === 'direct') {
        // Per-route ext_authz settings name a filter this variant no longer has.
        const vhosts = ((hcm.route_config as JsonObject).virtual_hosts as JsonObject[]) ?? [];
        for (const vh of vhosts) for (const r of (vh.routes as JsonObject[]) ?? []) delete r.typed_per_filter_config;
      }
    },
  });
}

interface Pep {
  child: ChildProcess;
  port: number;
  adminPort: number;
}

/** `mesh-pep serve` as `npm start` runs it (same V8 flags), one process, no trace export. */
async function startPep(policyFile: string): Promise<Pep> {
  const port = await freePort();
  const adminPort = await freePort();
  const child = spawn(
    process.execPath,
    [...WORKER_V8_FLAGS, MESH_PEP_MAIN, 'serve', '--config', policyFile, '--grpc-address', `127.0.0.1:${port}`, '--admin-address', `127.0.0.1:${adminPort}`, '--init-keys', '--drain-delay', '0', '--workers', '1'],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, LOG_LEVEL: 'warn', OTEL_SDK_DISABLED: 'true' } },
  );
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error('mesh-pep serve exited during start');
    const ok = await fetch(`http://127.0.0.1:${adminPort}/readyz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() - t0 > 300_000) throw new Error('mesh-pep serve not ready within 300 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port, adminPort };
}

/** The callee: reads the whole body, answers a small JSON, and counts what each Envoy let through. */
function startUpstream(): Promise<{ server: http.Server; port: number; seen: Record<string, number> }> {
  const seen: Record<string, number> = { plain: 0, checked: 0, protected: 0 };
  const reply = Buffer.from('{"ok":true}');
  const server = http.createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
      if (req.headers['x-mesh-protected'] === 'RETRIEVAL') seen.protected!++;
      else if (req.headers['x-mesh-decision-id']) seen.checked!++;
      else seen.plain!++;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': reply.length }).end(reply);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, seen })));
}

interface Stat {
  median: number;
  min: number;
  max: number;
}
const stat = (xs: number[]): Stat => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
};
const fmt = (s: Stat, digits = 3) => (s.min === s.max ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}…${s.max.toFixed(digits)})`);
const signed = (s: Stat) => {
  const f = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;
  return s.min === s.max ? f(s.median) : `${f(s.median)} (${f(s.min)}…${f(s.max)})`;
};

interface ResultRow {
  variant: Variant;
  mode: string;
  rps: Stat;
  p50Ms: Stat;
  p99Ms: Stat;
  addedP50Ms?: Stat;
  addedP99Ms?: Stat;
  failed: number;
  requests: number;
}

export async function runEnvoyBench(argv: string[], root: string): Promise<number> {
  const opts = parse(argv, root);
  if (!(await findH2load())) {
    process.stderr.write('h2load not found. It comes with Debian/Ubuntu\'s nghttp2-client: apt-get update && apt-get install -y nghttp2-client\n');
    return 1;
  }
  const log = (s: string) => process.stderr.write(s + '\n');
  const envoyBin = await ensureEnvoy({ log });
  log(`Envoy ${envoyBin.version} at ${envoyBin.path}`);
  const load = os.loadavg()[0]!;
  if (load > os.availableParallelism() * 0.5) log(`warning: load average ${load.toFixed(1)} on ${os.availableParallelism()} CPUs: figures will be noisy`);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-bench-envoy-'));
  await mkdir(path.join(dir, 'config'));
  const policyFile = path.join(dir, 'config', 'security_mesh.yaml');
  await writeFile(policyFile, await readFile(BUNDLED_POLICY_FILE, 'utf8'));
  const bodyFile = path.join(dir, 'body.json');
  await writeFile(bodyFile, jsonBody(BODY_BYTES));
  let pep: Pep | undefined;
  const envoys: Partial<Record<Variant, RunningEnvoy>> = {};
  const upstream = await startUpstream();
  try {
    log('starting mesh-pep (bundled policy, development keys)');
    pep = await startPep(policyFile);
    const { policy } = await loadPolicyFile(policyFile);
    const token = await mintPolicyToken(policy, { agentId: 'orchestrator-1', role: 'ORCHESTRATOR', ttlMs: 3_600_000 });
    for (const v of VARIANTS) {
      const cfg = benchEnvoyConfig(v, { pep: pep.port, upstream: upstream.port });
      await validateEnvoyConfig(envoyBin.path, cfg);
      envoys[v] = await startEnvoy(cfg, { binary: envoyBin.path, concurrency: 1 });
    }
    const headers = [`authorization: Bearer ${token}`, 'content-type: application/json'];
    const run = (v: Variant, shape: { clients: number; streams: number; rps?: number }) =>
      runH2load({ url: `http://127.0.0.1:${envoys[v]!.port()}${ROUTE}`, dataFile: bodyFile, headers, durationS: opts.durationS, warmupS: opts.warmupS, logFile: path.join(dir, 'h2load.log'), ...shape });

    // Every Envoy answers and each lets through what it should before anything is timed.
    for (const v of VARIANTS) {
      const r = await run(v, { clients: 1, streams: 1, rps: 50 });
      if (r.failed || r.requests === 0) throw new Error(`${v}: ${r.failed} of ${r.requests} requests failed in the check run:\n${(await envoys[v]!.log()).slice(-3_000)}`);
    }
    if (!upstream.seen.plain || !upstream.seen.checked || !upstream.seen.protected) throw new Error(`the upstream did not see all three kinds of request: ${JSON.stringify(upstream.seen)}`);

    const rows: ResultRow[] = [];
    for (const [mode, shape] of [[`${FIXED_RPS} rps`, { clients: 1, streams: 1, rps: FIXED_RPS }], ['max', CONCURRENCY_MAX]] as const) {
      const per: Record<Variant, LoadResult[]> = { direct: [], authz: [], full: [] };
      for (let round = 0; round < opts.rounds; round++) {
        // Rotate the order each round: direct first, then authz first, then full first.
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!);
        for (const v of order) {
          log(`${mode}, round ${round + 1}/${opts.rounds}: ${v}`);
          per[v].push(await run(v, shape));
        }
      }
      for (const v of VARIANTS) {
        const rs = per[v];
        const row: ResultRow = {
          variant: v,
          mode,
          rps: stat(rs.map((r) => r.rps)),
          p50Ms: stat(rs.map((r) => r.p50Ms)),
          p99Ms: stat(rs.map((r) => r.p99Ms)),
          failed: rs.reduce((a, r) => a + r.failed, 0),
          requests: rs.reduce((a, r) => a + r.requests, 0),
        };
        if (v !== 'direct') {
          row.addedP50Ms = stat(rs.map((r, i) => r.p50Ms - per.direct[i]!.p50Ms));
          row.addedP99Ms = stat(rs.map((r, i) => r.p99Ms - per.direct[i]!.p99Ms));
        }
        rows.push(row);
      }
    }

    const at1k = (v: Variant) => rows.find((r) => r.variant === v && r.mode === `${FIXED_RPS} rps`)!;
    const targets = [
      { what: 'Check adds ≤ 0.25 ms p50 at 1,000 rps', value: at1k('authz').addedP50Ms!.median, limit: 0.25 },
      { what: 'Check adds ≤ 0.8 ms p99 at 1,000 rps', value: at1k('authz').addedP99Ms!.median, limit: 0.8 },
      { what: 'Check + ext_proc 4 KiB adds ≤ 0.6 ms p50 at 1,000 rps', value: at1k('full').addedP50Ms!.median, limit: 0.6 },
    ].map((t) => ({ ...t, met: t.value <= t.limit }));

    const head = ['scenario', 'mode', 'req/s', 'p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', 'failed'];
    const lines = rows.map((r) => [LABEL[r.variant], r.mode, fmt(r.rps, 0), fmt(r.p50Ms), fmt(r.p99Ms), r.addedP50Ms ? signed(r.addedP50Ms) : '', r.addedP99Ms ? signed(r.addedP99Ms) : '', String(r.failed)]);
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    const out = (l: string[]) => `| ${l.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    process.stdout.write([out(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(out)].join('\n') + '\n');
    for (const t of targets) process.stdout.write(`${t.met ? 'met    ' : 'NOT met'}  ${t.what}: ${t.value >= 0 ? '+' : ''}${t.value.toFixed(3)} ms\n`);
    const facts: Record<string, Json> = {
      upstream_seen: upstream.seen,
      loadavg_1m_before: Number(load.toFixed(2)),
      loadavg_1m_after: Number(os.loadavg()[0]!.toFixed(2)),
    };
    const machine = {
      nproc: os.availableParallelism(),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      node: process.version,
      envoy: envoyBin.banner,
      date: new Date().toISOString(),
      command: `npm run bench -- --envoy${opts.quick ? ' --quick' : ''}`,
      nice: os.getPriority(),
      rounds: opts.rounds,
      durationS: opts.durationS,
      warmupS: opts.warmupS,
    };
    await mkdir(path.dirname(opts.json), { recursive: true });
    await writeFile(opts.json, JSON.stringify({ machine, facts, rows, targets }, null, 2) + '\n');
    process.stdout.write(`upstream saw: ${JSON.stringify(upstream.seen)}; load average ${facts.loadavg_1m_before} → ${facts.loadavg_1m_after}\nresults: ${path.relative(process.cwd(), opts.json)}\n`);
    return 0;
  } finally {
    for (const v of VARIANTS) await envoys[v]?.stop();
    if (pep && pep.child.exitCode === null) {
      const done = new Promise<void>((r) => pep!.child.once('exit', () => r()));
      pep.child.kill('SIGTERM');
      await done;
    }
    await new Promise<void>((r) => upstream.server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  }
}
