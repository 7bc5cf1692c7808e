import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { rotatedSiblings } from '../../src/audit/chain-files.js';
import { CLI } from '../support/cli.js';
import { CheckClient, denyReason, envoyCheckRequest, setHeaders, type CheckResponseView } from '../support/envoy-check.js';

/** Closed-loop Check load against one address; counts outcomes and keeps every allowed decision id. */
export interface LoadStats {
  sent: number;
  allowed: number;
  denied: Record<string, number>;
  errors: Record<string, number>;
  invalid: number;
  allowedIds: Set<string>;
}

export interface LoadOptions {
  concurrency: number;
  /** Builds the i-th request; default: an Envoy-shaped request for agent_memory with `tokens[i % n]`. */
  request?: (i: number) => unknown;
  tokens: readonly string[];
  /** Inspects each response (consistency checks); throwing counts as `invalid`. */
  inspect?: (res: CheckResponseView) => void;
}

export function isValidCheckResponse(res: CheckResponseView): boolean {
  if (res.status.code === 0) return !!res.ok_response && !res.denied_response;
  return (res.status.code === 7 || res.status.code === 16) && !!res.denied_response && typeof denyReason(res) === 'string';
}

export function startLoad(address: string, opts: LoadOptions): { stats: LoadStats; stop(): Promise<LoadStats> } {
  const stats: LoadStats = { sent: 0, allowed: 0, denied: {}, errors: {}, invalid: 0, allowedIds: new Set() };
  let running = true;
  let client = new CheckClient(address);
  let i = 0;
  const worker = async () => {
    while (running) {
      const n = i++;
      const req = opts.request?.(n) ?? envoyCheckRequest({ token: opts.tokens[n % opts.tokens.length] });
      stats.sent++;
      try {
        const res = await client.check(req);
        if (!isValidCheckResponse(res)) stats.invalid++;
        try {
          opts.inspect?.(res);
        } catch {
          stats.invalid++;
        }
        if (res.status.code === 0) {
          stats.allowed++;
          const id = setHeaders(res).get('x-mesh-decision-id');
          if (id) stats.allowedIds.add(id);
        } else {
          const r = denyReason(res) ?? 'unknown';
          stats.denied[r] = (stats.denied[r] ?? 0) + 1;
        }
      } catch (e) {
        const code = String((e as { code?: number }).code ?? 'exception');
        stats.errors[code] = (stats.errors[code] ?? 0) + 1;
        await sleep(20);
      }
    }
  };
  const workers = Array.from({ length: opts.concurrency }, () => worker());
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(workers);
      client.close();
      client = undefined as unknown as CheckClient;
      return stats;
    },
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** `mesh-pep serve` as its own process (so it can be SIGKILLed), ready once a Check is answered. */
export async function spawnServe(policyFile: string, grpcPort: number, adminPort: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', policyFile, '--grpc-address', `127.0.0.1:${grpcPort}`, '--admin-address', `127.0.0.1:${adminPort}`, '--no-init-keys', '--drain-delay', '200ms'], {
    env: { ...process.env, LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const client = new CheckClient(`127.0.0.1:${grpcPort}`);
  try {
    for (let i = 0; i < 300; i++) {
      if (child.exitCode !== null) throw new Error(`mesh-pep serve exited with ${child.exitCode}`);
      const ok = await client.check(envoyCheckRequest({})).then(() => true, () => false);
      if (ok) return child;
      await sleep(50);
    }
    child.kill('SIGKILL');
    throw new Error('mesh-pep serve did not become ready');
  } finally {
    client.close();
  }
}

export function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Decision ids of every record in the audit file and its rotated predecessors. */
export async function recordedDecisionIds(file: string): Promise<Set<string>> {
  const files = [...(await rotatedSiblings(file)).map((r) => r.path), file];
  const ids = new Set<string>();
  for (const f of files) {
    const text = await readFile(f, 'utf8').catch(() => '');
    for (const line of text.split('\n')) if (line) ids.add((JSON.parse(line) as { decision_id: string }).decision_id);
  }
  return ids;
}
