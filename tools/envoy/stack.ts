/**
 * The whole local stack of `envoy/docker-compose.yaml`, without Docker: a real Jaeger, mesh-pep
 * (`mesh-pep serve` on the bundled policy, exporting OTLP per the standard OTEL_* variables), the three
 * demo agents (`envoy/demo-agents/agent.mjs`, the same file compose mounts) and a real Envoy running the
 * shipped `envoy/envoy.yaml` with its clusters pointed at them. Every port is a free loopback port.
 * Used by the tracing tests and `npm run demo:envoy`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './binary.js';
import { readShipped, renderEnvoyConfig, type JsonObject } from './config.js';
import { startMeshPep, type MeshPepProcess } from './mesh-pep.js';
import { startEnvoy, validateEnvoyConfig, type RunningEnvoy } from './process.js';
import { startJaeger, type RunningJaeger } from '../jaeger/process.js';

export const DEMO_AGENT = path.join(REPO_ROOT, 'envoy', 'demo-agents', 'agent.mjs');
export const BUNDLED_POLICY_FILE = path.join(REPO_ROOT, 'config', 'security_mesh.yaml');

export interface DemoAgent {
  name: string;
  mode: 'echo' | 'store';
  port: number;
  process: ChildProcess;
  /** What the agent printed: one line per request it received. */
  output(): string;
  stop(): Promise<void>;
}

/** Starts `agent.mjs` on a free loopback port (PORT=0) and reads the port from its first line. */
export async function startDemoAgent(name: string, mode: DemoAgent['mode']): Promise<DemoAgent> {
  const child = spawn(process.execPath, [DEMO_AGENT], {
    env: { ...process.env, AGENT_NAME: name, AGENT_MODE: mode, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-65_536)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-65_536)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo agent ${name} did not start:\n${out}`)), 15_000);
    const onData = () => {
      const m = / listening on :(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`demo agent ${name} exited (${code}):\n${out}`));
    });
  });
  return {
    name,
    mode,
    port,
    process: child,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export interface TracedStackOptions {
  envoyBinary: string;
  jaegerBinary: string;
  /** A deliberate, named change to the shipped Envoy config (passed to renderEnvoyConfig). */
  patch?: (bootstrap: JsonObject) => void;
  /** Extra environment for mesh-pep. */
  pepEnv?: NodeJS.ProcessEnv;
}

export interface TracedStack {
  dir: string;
  /** The policy mesh-pep serves (the bundled one, copied so its keys and audit land in `dir`). */
  policyFile: string;
  jaeger: RunningJaeger;
  pep: MeshPepProcess;
  envoy: RunningEnvoy;
  agents: { orchestrator: DemoAgent; retriever: DemoAgent; analyst: DemoAgent };
  /** Envoy's agent listener, e.g. http://127.0.0.1:41234 */
  url: string;
  stop(): Promise<void>;
}

export async function startTracedStack(opts: TracedStackOptions): Promise<TracedStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-stack-'));
  // config/ inside the temp folder: the bundled policy's `../.mesh-pep/…` paths then land in `dir`.
  await mkdir(path.join(dir, 'config'));
  const policyFile = path.join(dir, 'config', 'security_mesh.yaml');
  await writeFile(policyFile, await readFile(BUNDLED_POLICY_FILE, 'utf8'));
  const started: Array<{ stop(): Promise<void> }> = [];
  const stop = async () => {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    started.length = 0;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const jaeger = await startJaeger({ binary: opts.jaegerBinary });
    started.push(jaeger);
    const pep = await startMeshPep({
      configFile: policyFile,
      extraArgs: ['--init-keys'],
      // The FHE keys of the bundled policy take a while to create on a busy machine.
      readyTimeoutMs: 180_000,
      env: {
        OTEL_SERVICE_NAME: 'mesh-pep',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://${jaeger.otlpGrpc.host}:${jaeger.otlpGrpc.port}`,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        // Spans reach Jaeger a fifth of a second after they end instead of the default 5 s.
        OTEL_BSP_SCHEDULE_DELAY: '200',
        ...opts.pepEnv,
      },
    });
    started.push(pep);
    const orchestrator = await startDemoAgent('orchestrator', 'echo');
    started.push(orchestrator);
    const retriever = await startDemoAgent('retriever', 'store');
    started.push(retriever);
    const analyst = await startDemoAgent('analyst', 'echo');
    started.push(analyst);
    const at = (a: DemoAgent) => ({ host: '127.0.0.1', port: a.port });
    const cfg = renderEnvoyConfig(readShipped(), {
      clusters: {
        mesh_pep: { host: '127.0.0.1', port: pep.grpcPort },
        jaeger_otlp: jaeger.otlpGrpc,
        orchestrator: at(orchestrator),
        retriever: at(retriever),
        analyst: at(analyst),
      },
      patch: opts.patch,
    });
    await validateEnvoyConfig(opts.envoyBinary, cfg);
    const envoy = await startEnvoy(cfg, { binary: opts.envoyBinary });
    started.push(envoy);
    return { dir, policyFile, jaeger, pep, envoy, agents: { orchestrator, retriever, analyst }, url: `http://127.0.0.1:${envoy.port()}`, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
