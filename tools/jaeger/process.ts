/**
 * Runs a real Jaeger (v2, the OpenTelemetry-Collector-based binary) for the tracing tests and the
 * Envoy demo: in-memory storage, OTLP gRPC and HTTP receivers, and the query API/UI, each on a free
 * loopback port. The collector config is generated here instead of using the binary's all-in-one
 * defaults, which bind fixed ports (4317, 16686, 8888, …) that other runs on a shared machine hold.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { freePort } from '../envoy/mesh-pep.js';

export interface StartJaegerOptions {
  binary: string;
  readyTimeoutMs?: number;
}

export interface RunningJaeger {
  /** host:port of the OTLP gRPC receiver (Envoy's `jaeger_otlp` cluster). */
  otlpGrpc: { host: string; port: number };
  /** Base URL of the OTLP HTTP receiver (`OTEL_EXPORTER_OTLP_ENDPOINT` for http/protobuf). */
  otlpHttpUrl: string;
  /** The Jaeger UI and its HTTP query API (`/api/traces/<id>`). */
  uiUrl: string;
  /** One trace from the query API, or undefined while Jaeger does not hold it (yet). */
  trace(traceId: string): Promise<JaegerTrace | undefined>;
  /** Polls until the trace holds spans that satisfy `done` (export is batched), or throws with what it saw. */
  waitForTrace(traceId: string, done: (t: JaegerTrace) => boolean, timeoutMs?: number): Promise<JaegerTrace>;
  log(): Promise<string>;
  stop(): Promise<void>;
  readonly process: ChildProcess;
}

/** The shapes of Jaeger's HTTP query API (`GET /api/traces/{id}`), as far as the tests read them. */
export interface JaegerTag {
  key: string;
  type: string;
  value: string | number | boolean;
}
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: 'CHILD_OF' | 'FOLLOWS_FROM'; traceID: string; spanID: string }[];
  startTime: number;
  duration: number;
  tags: JaegerTag[];
  processID: string;
}
export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: JaegerTag[] }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The collector config: only what the tests need, everything on loopback. */
export function jaegerConfig(ports: { otlpGrpc: number; otlpHttp: number; queryHttp: number; queryGrpc: number }): string {
  const at = (p: number) => `127.0.0.1:${p}`;
  return YAML.stringify({
    service: {
      extensions: ['jaeger_storage', 'jaeger_query'],
      pipelines: { traces: { receivers: ['otlp'], processors: ['batch'], exporters: ['jaeger_storage_exporter'] } },
      // The collector's own metrics would listen on :8888; nobody reads them here.
      telemetry: { metrics: { level: 'none' }, logs: { level: 'warn' } },
    },
    extensions: {
      jaeger_storage: { backends: { memstore: { memory: { max_traces: 100_000 } } } },
      jaeger_query: { storage: { traces: 'memstore' }, http: { endpoint: at(ports.queryHttp) }, grpc: { endpoint: at(ports.queryGrpc) } },
    },
    receivers: { otlp: { protocols: { grpc: { endpoint: at(ports.otlpGrpc) }, http: { endpoint: at(ports.otlpHttp) } } } },
    // The batch processor's default 200 ms timeout is short enough for a test that waits for its spans.
    processors: { batch: {} },
    exporters: { jaeger_storage_exporter: { trace_storage: 'memstore' } },
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function startOnce(opts: StartJaegerOptions): Promise<RunningJaeger> {
  const ports = { otlpGrpc: await freePort(), otlpHttp: await freePort(), queryHttp: await freePort(), queryGrpc: await freePort() };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-jaeger-'));
  const configFile = path.join(dir, 'jaeger.yaml');
  await writeFile(configFile, jaegerConfig(ports));
  const child = spawn(opts.binary, ['--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-65_536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited: number | null | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exited = code;
      resolve();
    }),
  );
  const stop = async () => {
    if (exited === undefined) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const uiUrl = `http://127.0.0.1:${ports.queryHttp}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (exited !== undefined) {
      await stop();
      throw new Error(`Jaeger exited (code ${exited}) before it was ready:\n${out.slice(-4_000)}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Jaeger was not ready in time:\n${out.slice(-4_000)}`);
    }
    const query = await fetch(`${uiUrl}/api/services`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.status, () => 0);
    if (query === 200 && (await canConnect(ports.otlpGrpc)) && (await canConnect(ports.otlpHttp))) break;
    await sleep(100);
  }

  const trace = async (traceId: string): Promise<JaegerTrace | undefined> => {
    const res = await fetch(`${uiUrl}/api/traces/${traceId}`, { signal: AbortSignal.timeout(5_000) });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`Jaeger query API answered ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { data?: JaegerTrace[] };
    return body.data?.[0];
  };
  return {
    otlpGrpc: { host: '127.0.0.1', port: ports.otlpGrpc },
    otlpHttpUrl: `http://127.0.0.1:${ports.otlpHttp}`,
    uiUrl,
    trace,
    async waitForTrace(traceId, done, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      let last: JaegerTrace | undefined;
      for (;;) {
        last = await trace(traceId);
        if (last && done(last)) return last;
        if (Date.now() > until) {
          const seen = last ? last.spans.map((s) => `${last!.processes[s.processID]?.serviceName}:${s.operationName}`).join(', ') : 'no trace';
          throw new Error(`Jaeger did not get the expected spans of trace ${traceId} in ${timeoutMs} ms; it holds: ${seen}`);
        }
        await sleep(200);
      }
    },
    log: async () => out + (await readFile(configFile, 'utf8').then((c) => `\n[config]\n${c}`, () => '')),
    stop,
    process: child,
  };
}

/**
 * Starts Jaeger; a port taken between picking it and Jaeger binding it (other developers' runs share
 * the machine) gets one retry on fresh ports.
 */
export async function startJaeger(opts: StartJaegerOptions): Promise<RunningJaeger> {
  try {
    return await startOnce(opts);
  } catch (e) {
    if (!/address already in use/i.test((e as Error).message)) throw e;
    return startOnce(opts);
  }
}

/** Tag value of a span, or undefined. */
export function tag(span: JaegerSpan, key: string): JaegerTag['value'] | undefined {
  return span.tags.find((t) => t.key === key)?.value;
}

/** The service that emitted a span. */
export function serviceOf(trace: JaegerTrace, span: JaegerSpan): string {
  return trace.processes[span.processID]?.serviceName ?? '';
}

/** The span's CHILD_OF parent in the same trace, or undefined for a root. */
export function parentOf(trace: JaegerTrace, span: JaegerSpan): JaegerSpan | undefined {
  const ref = span.references.find((r) => r.refType === 'CHILD_OF');
  return ref ? trace.spans.find((s) => s.spanID === ref.spanID) : undefined;
}
