/**
 * Runs mesh-pep as operators do (`mesh-pep serve`, a separate process), so a test can stop, kill or
 * restart it under Envoy's traffic and send it SIGHUP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { REPO_ROOT } from './binary.js';

export interface MeshPepProcessOptions {
  configFile: string;
  /** Fixed ports let a restarted server come back where Envoy's cluster points; default: fresh free ports. */
  grpcPort?: number;
  adminPort?: number;
  workers?: number;
  env?: NodeJS.ProcessEnv;
  extraArgs?: string[];
  readyTimeoutMs?: number;
}

export interface MeshPepProcess {
  grpcPort: number;
  adminPort: number;
  process: ChildProcess;
  /** stdout and stderr so far (pino JSON lines). */
  output(): string;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM and wait for the exit (SIGKILL after the timeout). */
  stop(timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

/** A port the kernel just handed out and released: good enough on loopback for a test's lifetime. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export const MESH_PEP_MAIN = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export async function startMeshPep(opts: MeshPepProcessOptions): Promise<MeshPepProcess> {
  const grpcPort = opts.grpcPort ?? (await freePort());
  const adminPort = opts.adminPort ?? (await freePort());
  const args = [
    MESH_PEP_MAIN, 'serve',
    '--config', opts.configFile,
    '--grpc-address', `127.0.0.1:${grpcPort}`,
    '--admin-address', `127.0.0.1:${adminPort}`,
    '--workers', String(opts.workers ?? 1),
    '--drain-delay', '0s',
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-65_536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  const stop = async (timeoutMs = 10_000) => {
    if (exitCode === undefined && child.exitCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(killer);
    }
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (exitCode !== undefined) throw new Error(`mesh-pep exited (code ${exitCode}) before it was ready:\n${out.slice(-4_000)}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`mesh-pep was not ready in time:\n${out.slice(-4_000)}`);
    }
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.status, () => 0);
    if (ready === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    grpcPort,
    adminPort,
    process: child,
    output: () => out,
    signal: (sig) => void child.kill(sig),
    stop,
    exited,
  };
}
