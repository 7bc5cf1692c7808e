import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type BufferConfig,
  type Sampler,
} from '@opentelemetry/sdk-trace-base';

/**
 * The standard OTEL_* variables mesh-pep honours, read from an explicit env (so tests and embedders
 * can pass their own) rather than from process.env deep inside the SDK.
 */
export type OtlpProtocol = 'grpc' | 'http/protobuf' | 'http/json';

export interface TracingConfig {
  /** Empty means tracing export is off (the no-op path). */
  exporters: ReadonlyArray<'otlp' | 'console'>;
  protocol: OtlpProtocol;
  /** Full URL: for HTTP the `/v1/traces` URL, for gRPC the collector address. */
  url: string;
  headers: Record<string, string>;
  timeoutMillis: number | undefined;
  serviceName: string;
  resourceAttributes: Record<string, string>;
  sampler: Sampler;
  batch: BufferConfig;
}

const PROTOCOLS: readonly OtlpProtocol[] = ['grpc', 'http/protobuf', 'http/json'];

/** Throws a plain Error naming the variable when a value is not one the OTel spec allows. */
export function readTracingConfig(env: NodeJS.ProcessEnv): TracingConfig {
  const get = (k: string): string | undefined => {
    const v = env[k]?.trim();
    return v ? v : undefined;
  };
  const tracesEndpoint = get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const endpoint = get('OTEL_EXPORTER_OTLP_ENDPOINT');
  let exporters: Array<'otlp' | 'console'> = [];
  const disabled = get('OTEL_SDK_DISABLED')?.toLowerCase() === 'true';
  const listed = (get('OTEL_TRACES_EXPORTER') ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const name of listed) {
    if (name === 'none') {
      exporters = [];
      break;
    }
    if (name !== 'otlp' && name !== 'console') {
      throw new Error(`OTEL_TRACES_EXPORTER: unsupported exporter "${name}" (supported: otlp, console, none)`);
    }
    if (!exporters.includes(name)) exporters.push(name);
  }
  // The spec's default exporter is otlp; mesh-pep only turns it on when an endpoint says where to send,
  // so an unconfigured PEP never tries to reach localhost:4318.
  if (!listed.length && (tracesEndpoint || endpoint)) exporters = ['otlp'];
  if (disabled) exporters = [];

  const protocolRaw = get('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? get('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  if (!PROTOCOLS.includes(protocolRaw as OtlpProtocol)) {
    throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL: unsupported "${protocolRaw}" (grpc, http/protobuf, http/json)`);
  }
  const protocol = protocolRaw as OtlpProtocol;
  const url =
    protocol === 'grpc'
      ? (tracesEndpoint ?? endpoint ?? 'http://localhost:4317')
      : (tracesEndpoint ?? `${(endpoint ?? 'http://localhost:4318').replace(/\/+$/, '')}/v1/traces`);

  const headers = { ...parseKeyValues(get('OTEL_EXPORTER_OTLP_HEADERS')), ...parseKeyValues(get('OTEL_EXPORTER_OTLP_TRACES_HEADERS')) };
  const timeout = num(get('OTEL_EXPORTER_OTLP_TRACES_TIMEOUT') ?? get('OTEL_EXPORTER_OTLP_TIMEOUT'), 'OTEL_EXPORTER_OTLP_TIMEOUT');
  const resourceAttributes = parseKeyValues(get('OTEL_RESOURCE_ATTRIBUTES'));
  const serviceName = get('OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? 'mesh-pep';

  return {
    exporters,
    protocol,
    url,
    headers,
    timeoutMillis: timeout,
    serviceName,
    resourceAttributes,
    sampler: readSampler(get('OTEL_TRACES_SAMPLER'), get('OTEL_TRACES_SAMPLER_ARG')),
    batch: {
      scheduledDelayMillis: num(get('OTEL_BSP_SCHEDULE_DELAY'), 'OTEL_BSP_SCHEDULE_DELAY'),
      exportTimeoutMillis: num(get('OTEL_BSP_EXPORT_TIMEOUT'), 'OTEL_BSP_EXPORT_TIMEOUT'),
      maxQueueSize: num(get('OTEL_BSP_MAX_QUEUE_SIZE'), 'OTEL_BSP_MAX_QUEUE_SIZE'),
      maxExportBatchSize: num(get('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'), 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
    },
  };
}

function readSampler(name: string | undefined, arg: string | undefined): Sampler {
  const ratio = () => {
    if (arg === undefined) return 1;
    const r = Number(arg);
    if (!Number.isFinite(r) || r < 0 || r > 1) throw new Error(`OTEL_TRACES_SAMPLER_ARG: "${arg}" is not a ratio in [0, 1]`);
    return r;
  };
  switch ((name ?? 'parentbased_always_on').toLowerCase()) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio());
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio()) });
    default:
      throw new Error(
        `OTEL_TRACES_SAMPLER: unsupported "${name}" (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)`,
      );
  }
}

/** `k1=v1,k2=v2` with percent-encoded values, the W3C Baggage-like format the OTel spec uses. */
export function parseKeyValues(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const part of raw.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const k = part.slice(0, eq).trim();
    let v = part.slice(eq + 1).trim();
    try {
      v = decodeURIComponent(v);
    } catch {
      // keep the raw value: a stray % must not stop the PEP from starting
    }
    if (k) out[k] = v;
  }
  return out;
}

function num(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: "${raw}" is not a non-negative number`);
  return n;
}
