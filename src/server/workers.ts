import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FileAuditSink } from '../audit/file-sink.js';
import { IpcAuditSink, type AuditChannel } from '../audit/ipc-sink.js';
import { AuditIpcWriter } from '../audit/ipc-writer.js';
import { IpcSharedIdentityPeer, SharedIdentityIpcRegistry, type IdentityChannel } from '../policy/guards/shared-identity-ipc.js';
import { loadPolicyFile } from '../config/load.js';
import type { ServerTlsSettings } from '../config/types.js';
import { createMetrics } from '../telemetry/metrics.js';
import { containerCpuCount } from './cpus.js';
import type { Logger } from '../telemetry/logger.js';
import { ensureDevKeys } from './dev-keys.js';
import type { RunningServer } from './start.js';

/**
 * `mesh-pep serve --workers N` (default: the container's CPU count): N node:cluster workers share the
 * gRPC port (the primary accepts and hands connections round-robin; grpc-js `bindAsync` in a worker
 * goes through cluster like any net.Server). Each worker is a full PEP (policy store, verifier cache);
 * the primary supervises, owns the admin HTTP port and writes the audit log:
 *
 * - Audit: one hash chain in `audit.file`, as with one process. Workers relay their records over IPC
 *   (`audit/ipc-sink.ts`), batched per event-loop turn; the primary appends them with group commit
 *   and answers a batch once its durable records are on disk (`audit/ipc-writer.ts`).
 * - Guards: state that must span workers lives in the primary. The shared-identity view (one agent
 *   id from two SPIFFE principals) is kept there (`policy/guards/shared-identity-ipc.ts`): a worker
 *   reports each new (agent, principal) pair before deciding, and the primary pushes a newly shared
 *   agent to every worker. Revocation needs no shared state: every worker reads the same policy and
 *   revocation file itself (file watch, SIGHUP forwarded, the revocation file polled every second), so
 *   each applies a revocation within the same bound as one process would.
 * - /healthz answers from the primary; /readyz is 200 only when the audit log is writable and every
 *   worker slot is up and ready (asked over IPC); /metrics is every worker's registry and the
 *   primary's (audit series) summed series by series.
 * - SIGHUP is forwarded (each worker reloads); SIGTERM/SIGINT drain every worker, then the primary
 *   writes what they sent last and exits 0 when all of them exited 0.
 * - A worker that dies while serving is replaced in the same slot; a worker that fails before the
 *   cluster was first ready stops the whole process (a bad policy, a busy port).
 */
export interface ClusterOptions {
  workers: number;
  configFile: string;
  grpcAddress: string;
  adminAddress: string;
  initDevKeys: boolean;
  drainDelayMs: number;
  drainTimeoutMs?: number;
  /** TLS for the gRPC listener from `--tls-*`; each worker serves it (and reloads the files) itself. */
  tls?: ServerTlsSettings;
  log: Logger;
}

/**
 * `--workers`: a positive integer, or `auto` for the CPUs this container may use (cgroup quota
 * included). `source` names where the text came from in the error (the flag or MESH_PEP_WORKERS).
 */
export function parseWorkerCount(text: string, source = '--workers'): number {
  if (text === 'auto') return containerCpuCount();
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError(`${source} must be a whole number from 1 to 256 or "auto", not "${text}"`);
  return n;
}

type ToWorker = { mesh: 'ask'; id: number; what: 'metrics' | 'status' };
type FromWorker =
  | { mesh: 'ready'; slot: number; pid: number; grpcPort: number }
  | { mesh: 'answer'; id: number; body: string; ready?: boolean };

const SLOT_ENV = 'MESH_PEP_WORKER_SLOT';

/**
 * V8 settings for every mesh-pep process (`npm start`, the image's entrypoint, cluster workers); the
 * figures are in BENCHMARKS.md ("Memory" and "What is slow").
 * - Semi-spaces of 8 MB, no more and no less. At most 8 instead of 16: under saturation peak RSS was
 *   158–186 MB per process with it against 191–219 MB without, no throughput difference measurable. At
 *   least 8: after a pause V8 shrinks the young generation to 1 MB and regrows it only slowly at a
 *   moderate rate, so at 1,000 Checks/s scavenges ran 17 times a second instead of 6.
 * - No allocation-site pretenuring. Under saturation (128 calls in flight) the objects of a call
 *   outlive two scavenges, so V8 learns to allocate them straight into the old generation, and it
 *   keeps doing so when the load falls: at 1,000 Checks/s each call then left ~10 KB of old-generation
 *   garbage, scavenges took 2–2.6 ms instead of 0.5–0.8 and the p99 went from ~0.6 to 1.4–1.9 ms, in
 *   whichever process happened to have learned it.
 * - The old generation may grow to 2.5× what survived the last full collection (V8's own factor goes
 *   up to 4× on a host with more than 2 GB). Under saturation the garbage promoted by calls in flight
 *   fills the old generation in a few hundred ms, so the factor sets peak RSS: 169–176 MB against
 *   173–234 MB for one process in alternating runs, with saturated throughput no lower.
 * An operator's own setting (on the command line, or in NODE_OPTIONS where Node allows it) wins.
 */
export const WORKER_V8_FLAGS: readonly string[] = [
  '--max-semi-space-size=8',
  '--min-semi-space-size=8',
  '--no-allocation-site-pretenuring',
  '--heap-growing-percent=150',
];

/** A flag's name without value or `no-` prefix, `_` as `-`: `--no-foo_bar=1` and `--foo-bar` are one flag. */
function flagName(arg: string): string {
  return arg.split('=', 1)[0]!.replace(/_/g, '-').replace(/^--no-/, '--');
}

/** The primary's execArgv plus WORKER_V8_FLAGS that the operator did not set themselves. */
export function workerExecArgv(execArgv: readonly string[], nodeOptions = ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map(flagName));
  return [...execArgv, ...WORKER_V8_FLAGS.filter((f) => !given.has(flagName(f)))];
}

const ASK_TIMEOUT_MS = 2000;

export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env[SLOT_ENV] !== undefined;
}

// ---------------------------------------------------------------------------------------------- primary

interface Slot {
  n: number;
  worker: Worker | undefined;
  ready: boolean;
}

export async function runClusterPrimary(opts: ClusterOptions): Promise<number> {
  const log = opts.log;
  // Keys are created once, here: workers racing to create a missing issuer key would each mint a
  // different one. Loading the policy also fails fast on a bad file before anything is forked.
  const { policy } = await loadPolicyFile(opts.configFile);
  if (opts.initDevKeys) {
    const written = await ensureDevKeys(policy);
    if (written.length) log.info({ files: written }, 'created development keys');
  }
  // The one audit chain, opened before any worker exists: a bad audit file stops the start here.
  const metrics = createMetrics();
  const auditSink = await FileAuditSink.open(policy.audit, { metrics, log });
  const audit = new AuditIpcWriter(auditSink);
  // Guard state that must span the workers (an agent id seen from two principals on two workers).
  const identities = new SharedIdentityIpcRegistry();

  const slots: Slot[] = Array.from({ length: opts.workers }, (_, i) => ({ n: i + 1, worker: undefined, ready: false }));
  let draining = false;
  let everReady = false;
  let failed = false;
  let grpcPort = 0;
  let nextAsk = 1;
  const waiting = new Map<number, (m: Extract<FromWorker, { mesh: 'answer' }>) => void>();

  const ask = (w: Worker, what: ToWorker['what']) =>
    new Promise<Extract<FromWorker, { mesh: 'answer' }> | undefined>((resolve) => {
      const id = nextAsk++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve(undefined);
      }, ASK_TIMEOUT_MS);
      waiting.set(id, (m) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(m);
      });
      try {
        w.send({ mesh: 'ask', id, what } satisfies ToWorker);
      } catch {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(undefined);
      }
    });

  let allReady!: () => void;
  let startFailed!: (e: Error) => void;
  const started = new Promise<void>((res, rej) => {
    allReady = res;
    startFailed = rej;
  });

  const fork = (slot: Slot) => {
    const w = cluster.fork({ [SLOT_ENV]: String(slot.n) });
    slot.worker = w;
    slot.ready = false;
    w.on('message', (m: FromWorker) => {
      if (audit.handle(w, m)) return;
      if (identities.handle(w, m)) return;
      if (m?.mesh === 'ready') {
        slot.ready = true;
        grpcPort = m.grpcPort;
        log.info({ worker: slot.n, pid: m.pid }, 'worker ready');
        if (!everReady && slots.every((s) => s.ready)) {
          everReady = true;
          allReady();
        }
      } else if (m?.mesh === 'answer') {
        waiting.get(m.id)?.(m);
      }
    });
    w.on('exit', (code, signal) => {
      audit.forget(w);
      identities.forget(w);
      slot.ready = false;
      if (slot.worker === w) slot.worker = undefined;
      if (draining) return;
      if (!everReady) {
        failed = true;
        startFailed(new Error(`worker ${slot.n} exited during start (${signal ?? `code ${code}`}); see its log above`));
        return;
      }
      log.error({ worker: slot.n, code, signal }, 'worker died; starting a replacement');
      setTimeout(() => {
        if (!draining) fork(slot);
      }, 500).unref();
    });
  };

  const admin = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const live = () => slots.flatMap((s) => (s.worker && s.ready ? [s.worker] : []));
    switch (url) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        if (draining || !everReady || !audit.healthy) {
          res.writeHead(503, { 'content-type': 'text/plain' }).end(draining ? 'draining\n' : !everReady ? 'starting\n' : 'audit unavailable\n');
          return;
        }
        const workers = live();
        void Promise.all(workers.map((w) => ask(w, 'status'))).then((answers) => {
          const notReady = answers.filter((a) => !a?.ready).length + (slots.length - workers.length);
          if (notReady === 0 && !draining) res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
          else res.writeHead(503, { 'content-type': 'text/plain' }).end(draining ? 'draining\n' : `${notReady} of ${slots.length} workers not ready\n`);
        });
        return;
      }
      case '/metrics':
        void Promise.all(live().map((w) => ask(w, 'metrics'))).then((answers) => {
          const texts = answers.flatMap((a) => (a ? [a.body] : []));
          const workersUp = texts.length;
          texts.push(metrics.registry.render());
          const up = `# HELP mesh_pep_workers_up Cluster workers that answered this scrape\n# TYPE mesh_pep_workers_up gauge\nmesh_pep_workers_up ${workersUp}\n`;
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(mergePrometheusText(texts) + up);
        });
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  const { host, port } = splitAddress(opts.adminAddress);
  const adminPort = await new Promise<number>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(port, host, () => resolve((admin.address() as AddressInfo).port));
  }).catch((e: Error) => {
    throw new Error(`cannot listen for admin HTTP on ${opts.adminAddress}: ${e.message}`);
  });

  const stopAll = (signal: NodeJS.Signals) => {
    for (const s of slots) s.worker?.process.kill(signal);
  };
  const exited = () =>
    Promise.all(
      Object.values(cluster.workers ?? {}).map(
        (w) => new Promise<number>((resolve) => (w!.isDead() ? resolve(w!.process.exitCode ?? 1) : w!.once('exit', (code) => resolve(code ?? 1)))),
      ),
    );

  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS) });
  for (const s of slots) fork(s);
  try {
    await started;
  } catch (e) {
    draining = true;
    stopAll('SIGTERM');
    await exited();
    admin.close();
    await auditSink.close();
    log.error({ err: { message: (e as Error).message } }, 'cluster failed to start');
    return 1;
  }
  log.info({ workers: slots.length, grpc: `${opts.grpcAddress.replace(/:\d+$/, '')}:${grpcPort}`, admin: `${host}:${adminPort}` }, 'mesh-pep serving');

  const onHup = () => stopAll('SIGHUP');
  process.on('SIGHUP', onHup);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  process.off('SIGHUP', onHup);
  log.info({ signal, workers: slots.length }, 'draining');
  draining = true;
  stopAll('SIGTERM');
  const hardStop = setTimeout(() => stopAll('SIGKILL'), opts.drainDelayMs + (opts.drainTimeoutMs ?? 10_000) + 5000);
  const codes = await exited();
  clearTimeout(hardStop);
  await new Promise<void>((resolve) => admin.close(() => resolve()));
  admin.closeAllConnections?.();
  await auditSink.close();
  log.info({ exit_codes: codes }, 'stopped');
  return failed || codes.some((c) => c !== 0) ? 1 : 0;
}

// ----------------------------------------------------------------------------------------------- worker

export async function runClusterWorker(opts: ClusterOptions): Promise<number> {
  const slot = Number(process.env[SLOT_ENV]);
  const log = opts.log.child({ worker: slot });
  // Imported here, not at the top: the primary never loads gRPC and the protos, so it forks sooner.
  const { startServer } = await import('./start.js');
  const running: RunningServer = await startServer({
    configFile: opts.configFile,
    grpcAddress: opts.grpcAddress,
    adminAddress: opts.adminAddress,
    adminHttp: false,
    auditSink: new IpcAuditSink(process as unknown as AuditChannel),
    sharedIdentityPeer: new IpcSharedIdentityPeer(process as unknown as IdentityChannel),
    tls: opts.tls,
    initDevKeys: false,
    watchPolicy: true,
    drainDelayMs: opts.drainDelayMs,
    drainTimeoutMs: opts.drainTimeoutMs,
    log,
  });
  const rt = running.runtime;
  process.on('message', (m: ToWorker) => {
    if (m?.mesh !== 'ask') return;
    const body = m.what === 'metrics' ? rt.metrics.registry.render() : '';
    process.send?.({ mesh: 'answer', id: m.id, body, ready: rt.ready } satisfies FromWorker);
  });
  process.on('SIGHUP', () => void rt.reload());
  process.send?.({ mesh: 'ready', slot, pid: process.pid, grpcPort: running.grpcPort } satisfies FromWorker);
  await new Promise<void>((resolve) => {
    const stop = () => void running.close().then(resolve);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    // The primary is gone (killed hard): nobody supervises or serves admin, so drain and leave.
    process.once('disconnect', stop);
  });
  process.removeAllListeners('message');
  // The IPC channel would keep this process alive after its servers closed.
  if (process.connected) process.disconnect();
  return 0;
}

// ------------------------------------------------------------------------------------------ metrics merge

/**
 * Sums Prometheus text from several processes series by series (counters, histogram buckets, sums and
 * counts add up; so do the queue-depth gauges, which become the cluster's total). Families keep the
 * order in which they first appear.
 */
export function mergePrometheusText(texts: readonly string[]): string {
  const families = new Map<string, { head: string[]; series: Map<string, number> }>();
  for (const text of texts) {
    let current: { head: string[]; series: Map<string, number> } | undefined;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('# HELP ')) {
        const name = line.slice(7).split(' ', 1)[0]!;
        current = families.get(name);
        if (!current) {
          current = { head: [line], series: new Map() };
          families.set(name, current);
        }
        continue;
      }
      if (line.startsWith('#')) {
        if (current && current.head.length < 2 && !current.head.includes(line)) current.head.push(line);
        continue;
      }
      const cut = line.lastIndexOf(' ');
      if (cut <= 0 || !current) continue;
      const key = line.slice(0, cut);
      const value = Number(line.slice(cut + 1));
      current.series.set(key, (current.series.get(key) ?? 0) + (Number.isFinite(value) ? value : 0));
    }
  }
  let out = '';
  for (const f of families.values()) {
    out += f.head.join('\n') + '\n';
    for (const [key, v] of f.series) out += `${key} ${v}\n`;
  }
  return out;
}

function splitAddress(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`address "${addr}" must be HOST:PORT`);
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port };
}
