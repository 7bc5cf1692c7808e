/**
 * Runs a real Envoy for tests, the demo and the benchmarks: ephemeral ports read back from Envoy's admin
 * API, its log kept in a file for the failure message, and a stop that always reaps the process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import type { JsonObject } from './config.js';

export interface StartEnvoyOptions {
  binary: string;
  /** Envoy worker threads; 1 keeps tests light on a 2-CPU machine. */
  concurrency?: number;
  logLevel?: 'trace' | 'debug' | 'info' | 'warning' | 'error' | 'critical' | 'off';
  /** Extra component log levels, e.g. "ext_proc:debug". */
  componentLogLevel?: string;
  readyTimeoutMs?: number;
}

export interface RunningEnvoy {
  adminUrl: string;
  /** The bound port of a listener (the first one when no name is given). */
  port(listenerName?: string): number;
  /** Envoy's own log so far (for assertion messages). */
  log(): Promise<string>;
  /** A counter or gauge from /stats, e.g. `cluster.mesh_pep.upstream_rq_total`; undefined when absent. */
  stat(name: string): Promise<number | undefined>;
  stop(): Promise<void>;
  readonly process: ChildProcess;
  readonly dir: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function getText(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return { status: res.status, body: await res.text() };
}

interface ListenerStatus {
  name: string;
  local_address?: { socket_address?: { address?: string; port_value?: number } };
}

export async function startEnvoy(bootstrap: JsonObject, opts: StartEnvoyOptions): Promise<RunningEnvoy> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-envoy-'));
  const configFile = path.join(dir, 'envoy.yaml');
  const adminFile = path.join(dir, 'admin-address');
  const logFile = path.join(dir, 'envoy.log');
  await writeFile(configFile, YAML.stringify(bootstrap));
  const args = [
    '-c', configFile,
    '--disable-hot-restart',
    '--admin-address-path', adminFile,
    '--concurrency', String(opts.concurrency ?? 1),
    '--log-level', opts.logLevel ?? 'warning',
    '--log-path', logFile,
  ];
  if (opts.componentLogLevel) args.push('--component-log-level', opts.componentLogLevel);
  const child = spawn(opts.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-16_384);
  });
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  const readLog = async () => {
    const file = await readFile(logFile, 'utf8').catch(() => '');
    return file + (stderr ? `\n[stderr]\n${stderr}` : '');
  };
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  let adminUrl = '';
  let listeners: ListenerStatus[] = [];
  try {
    for (;;) {
      if (exited) throw new Error(`Envoy exited before it was ready (code ${exited.code}, signal ${exited.signal})`);
      if (Date.now() > deadline) throw new Error('Envoy was not ready in time');
      if (!adminUrl) {
        const addr = (await readFile(adminFile, 'utf8').catch(() => '')).trim();
        if (addr) adminUrl = `http://${addr}`;
      }
      if (adminUrl) {
        const ready = await getText(`${adminUrl}/ready`).catch(() => undefined);
        if (ready?.status === 200) {
          const ls = await getText(`${adminUrl}/listeners?format=json`);
          listeners = (JSON.parse(ls.body) as { listener_statuses?: ListenerStatus[] }).listener_statuses ?? [];
          if (listeners.every((l) => l.local_address?.socket_address?.port_value)) break;
        }
      }
      await sleep(50);
    }
  } catch (e) {
    const log = await readLog();
    await stop();
    throw new Error(`${(e as Error).message}\n--- envoy log ---\n${log.slice(-8_000)}`);
  }

  return {
    adminUrl,
    process: child,
    dir,
    port(listenerName?: string) {
      const l = listenerName ? listeners.find((x) => x.name === listenerName) : listeners[0];
      const port = l?.local_address?.socket_address?.port_value;
      if (!port) throw new Error(`Envoy has no listener ${listenerName ?? ''}`);
      return port;
    },
    log: readLog,
    async stat(name: string) {
      const { body } = await getText(`${adminUrl}/stats?filter=${encodeURIComponent(`^${name.replace(/[.]/g, '\\.')}$`)}`);
      const m = /:\s*(\d+)\s*$/m.exec(body);
      return m ? Number(m[1]) : undefined;
    },
    stop,
  };
}

/** `envoy --mode validate`: throws with Envoy's own words when the config is refused. */
export async function validateEnvoyConfig(binary: string, bootstrap: JsonObject | string): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-envoy-validate-'));
  const file = path.join(dir, 'envoy.yaml');
  try {
    await writeFile(file, typeof bootstrap === 'string' ? bootstrap : YAML.stringify(bootstrap));
    const child = spawn(binary, ['--mode', 'validate', '-c', file, '--disable-hot-restart', '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    if (code !== 0) throw new Error(`envoy --mode validate refused the config (exit ${code}):\n${out.slice(-4_000)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
