import {
  ROOT_CONTEXT,
  SpanKind,
  isSpanContextValid,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api';
import { CompositePropagator, ExportResultCode, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { readTracingConfig, type TracingConfig } from './otel-env.js';

export type Carrier = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

export interface MeshSpanAttributes {
  'mesh.domain'?: string;
  'mesh.tier'?: string;
  'mesh.decision'?: string;
  'mesh.reason'?: string;
  'mesh.agent.role'?: string;
  /** Agent protocols: the JSON-RPC method(s) and tool(s) of the body, never argument values. */
  'rpc.system'?: string;
  'rpc.method'?: string;
  'mcp.method.name'?: string;
  'gen_ai.tool.name'?: string;
}

/**
 * Span attributes of an MCP/A2A body: OTel's `rpc.*` for every JSON-RPC call, `mcp.method.name` for MCP
 * methods (A2A's are not MCP's), `gen_ai.tool.name` for tools. Names only, never arguments.
 */
export function rpcSpanAttributes(rpc: { rpc_method: string; tool?: string }, protocol: 'mcp' | 'a2a'): MeshSpanAttributes {
  return {
    'rpc.system': 'jsonrpc',
    'rpc.method': rpc.rpc_method,
    ...(protocol === 'mcp' ? { 'mcp.method.name': rpc.rpc_method } : {}),
    ...(rpc.tool ? { 'gen_ai.tool.name': rpc.tool } : {}),
  };
}

export interface SpanHandle {
  /** The trace this span belongs to (also when it is not sampled), for the audit record's trace_id. */
  readonly traceId: string | undefined;
  setAttributes(a: MeshSpanAttributes): void;
  end(): void;
  /** An INTERNAL child span, e.g. one per ext_proc phase. */
  child(name: string): SpanHandle;
}

export interface Tracing {
  /** False when no exporter is configured: spans are not created, only the incoming trace id is read. */
  readonly enabled: boolean;
  /**
   * A SERVER span whose parent is the trace context in the gRPC call's metadata (W3C `traceparent` /
   * `tracestate`, B3 single `b3` or multi `x-b3-*`), else the one in the checked request's headers, else
   * a new root. An explicit `parent` handle wins over both. The parent's sampled flag is honoured.
   * Carrier keys must be lower-case (gRPC metadata and Envoy's header maps are).
   */
  startServerSpan(
    name: 'mesh.authz.check' | `mesh.extproc.${string}`,
    carriers: { grpcMetadata: Carrier; requestHeaders?: Carrier },
    parent?: SpanHandle,
  ): SpanHandle;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * A gRPC call's metadata as a carrier: `call.metadata` of @grpc/grpc-js (structurally typed so this
 * module does not load gRPC). Binary (`-bin`) values are skipped; keys are already lower-case.
 */
export function metadataCarrier(metadata: { getMap(): Record<string, unknown> }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata.getMap())) if (typeof v === 'string') out[k] = v;
  return out;
}

const getter: TextMapGetter<Carrier> = {
  keys: (c) => (c instanceof Map ? [...c.keys()] : Object.keys(c)),
  get: (c, key) => {
    const k = key.toLowerCase();
    return c instanceof Map ? c.get(k) : (c as Readonly<Record<string, string>>)[k];
  },
};

// W3C last: when a request carries both (Envoy can emit both), traceparent wins.
const propagator = new CompositePropagator({ propagators: [new B3Propagator(), new W3CTraceContextPropagator()] });

function parentContext(carriers: { grpcMetadata: Carrier; requestHeaders?: Carrier }): Context {
  const fromMetadata = propagator.extract(ROOT_CONTEXT, carriers.grpcMetadata, getter);
  if (trace.getSpanContext(fromMetadata) || !carriers.requestHeaders) return fromMetadata;
  return propagator.extract(ROOT_CONTEXT, carriers.requestHeaders, getter);
}

/** Reads OTEL_* from `env` (default process.env) once; call at startup and keep the result. */
export function createTracing(env: NodeJS.ProcessEnv = process.env): Tracing {
  const cfg = readTracingConfig(env);
  if (!cfg.exporters.length) return new NoopTracing();
  return new SdkTracing(cfg);
}

class NoopTracing implements Tracing {
  readonly enabled = false;
  startServerSpan(
    _name: string,
    carriers: { grpcMetadata: Carrier; requestHeaders?: Carrier },
    parent?: SpanHandle,
  ): SpanHandle {
    if (parent) return new NoopSpan(parent.traceId);
    const sc = trace.getSpanContext(parentContext(carriers));
    return new NoopSpan(sc && isSpanContextValid(sc) ? sc.traceId : undefined);
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

class NoopSpan implements SpanHandle {
  constructor(readonly traceId: string | undefined) {}
  setAttributes(): void {}
  end(): void {}
  child(): SpanHandle {
    return this;
  }
}

class SdkTracing implements Tracing {
  readonly enabled = true;
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;

  constructor(cfg: TracingConfig) {
    const processors: SpanProcessor[] = cfg.exporters.map(
      (e) => new BatchSpanProcessor(e === 'console' ? new ConsoleSpanExporter() : new LazyOtlpExporter(cfg), cfg.batch),
    );
    // Not registered as the global provider: mesh-pep passes contexts explicitly, so it cannot
    // interfere with (or be captured by) another tracer in the same process.
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ ...cfg.resourceAttributes, 'service.name': cfg.serviceName }),
      sampler: cfg.sampler,
      spanProcessors: processors,
    });
    this.tracer = this.provider.getTracer('mesh-pep');
  }

  startServerSpan(
    name: string,
    carriers: { grpcMetadata: Carrier; requestHeaders?: Carrier },
    parent?: SpanHandle,
  ): SpanHandle {
    const ctx = parent instanceof LiveSpan ? parent.context : parentContext(carriers);
    const span = this.tracer.startSpan(name, { kind: SpanKind.SERVER }, ctx);
    return new LiveSpan(this.tracer, span, trace.setSpan(ctx, span));
  }

  forceFlush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

class LiveSpan implements SpanHandle {
  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
    readonly context: Context,
  ) {}

  get traceId(): string | undefined {
    const sc = this.span.spanContext();
    return isSpanContextValid(sc) ? sc.traceId : undefined;
  }

  setAttributes(a: MeshSpanAttributes): void {
    for (const [k, v] of Object.entries(a)) if (v !== undefined) this.span.setAttribute(k, v);
  }

  end(): void {
    this.span.end();
  }

  child(name: string): SpanHandle {
    const span = this.tracer.startSpan(name, { kind: SpanKind.INTERNAL }, this.context);
    return new LiveSpan(this.tracer, span, trace.setSpan(this.context, span));
  }
}

/**
 * Loads the exporter for the configured protocol on first export, so a PEP exporting over HTTP never
 * loads the gRPC exporter and vice versa.
 */
class LazyOtlpExporter implements SpanExporter {
  private inner: Promise<SpanExporter> | undefined;
  constructor(private readonly cfg: TracingConfig) {}

  private load(): Promise<SpanExporter> {
    this.inner ??= loadOtlpExporter(this.cfg);
    return this.inner;
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.load().then(
      (e) => e.export(spans, done),
      (error: Error) => done({ code: ExportResultCode.FAILED, error }),
    );
  }

  async shutdown(): Promise<void> {
    if (this.inner) await (await this.inner).shutdown();
  }

  async forceFlush(): Promise<void> {
    if (this.inner) await (await this.inner).forceFlush?.();
  }
}

async function loadOtlpExporter(cfg: TracingConfig): Promise<SpanExporter> {
  const common = { url: cfg.url, ...(cfg.timeoutMillis !== undefined ? { timeoutMillis: cfg.timeoutMillis } : {}) };
  switch (cfg.protocol) {
    case 'grpc': {
      const [{ OTLPTraceExporter }, { Metadata }] = await Promise.all([
        import('@opentelemetry/exporter-trace-otlp-grpc'),
        import('@grpc/grpc-js'),
      ]);
      const metadata = new Metadata();
      for (const [k, v] of Object.entries(cfg.headers)) metadata.set(k, v);
      return new OTLPTraceExporter({ ...common, metadata });
    }
    case 'http/protobuf': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
      return new OTLPTraceExporter({ ...common, headers: cfg.headers });
    }
    case 'http/json': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      return new OTLPTraceExporter({ ...common, headers: cfg.headers });
    }
  }
}
