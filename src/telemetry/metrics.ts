/**
 * A small Prometheus text-format registry. Series are keyed by their label values joined once, so an
 * increment on the hot path is one Map lookup; rendering happens only when /metrics is scraped.
 */
type Labels = Readonly<Record<string, string>>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function renderLabels(names: readonly string[], values: readonly string[], extra = ''): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private readonly series = new Map<string, { values: string[]; n: number }>();
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[] = []) {}
  inc(labels: Labels = {}, by = 1): void {
    const values = this.labelNames.map((n) => labels[n] ?? '');
    const key = values.join('\u0000');
    const s = this.series.get(key);
    if (s) s.n += by;
    else this.series.set(key, { values, n: by });
  }
  get(labels: Labels = {}): number {
    return this.series.get(this.labelNames.map((n) => labels[n] ?? '').join('\u0000'))?.n ?? 0;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const s of this.series.values()) out += `${this.name}${renderLabels(this.labelNames, s.values)} ${s.n}\n`;
    return out;
  }
}

export class Gauge implements Metric {
  private readonly series = new Map<string, { values: string[]; n: number }>();
  private collector: (() => number) | undefined;
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[] = []) {}
  set(value: number, labels: Labels = {}): void {
    const values = this.labelNames.map((n) => labels[n] ?? '');
    this.series.set(values.join('\u0000'), { values, n: value });
  }
  /** For an unlabelled gauge read at scrape time (queue depth, cache size). */
  collect(fn: () => number): void {
    this.collector = fn;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n`;
    if (this.collector) out += `${this.name} ${this.collector()}\n`;
    for (const s of this.series.values()) out += `${this.name}${renderLabels(this.labelNames, s.values)} ${s.n}\n`;
    return out;
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { values: string[]; counts: number[]; sum: number; n: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
    readonly labelNames: readonly string[] = [],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const values = this.labelNames.map((n) => labels[n] ?? '');
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      s = { values, counts: new Array<number>(this.buckets.length).fill(0), sum: 0, n: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.n++;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => {
        out += `${this.name}_bucket${renderLabels(this.labelNames, s.values, `le="${b}"`)} ${s.counts[i]}\n`;
      });
      out += `${this.name}_bucket${renderLabels(this.labelNames, s.values, 'le="+Inf"')} ${s.n}\n`;
      out += `${this.name}_sum${renderLabels(this.labelNames, s.values)} ${s.sum}\n`;
      out += `${this.name}_count${renderLabels(this.labelNames, s.values)} ${s.n}\n`;
    }
    return out;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  register<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }
  render(): string {
    return this.metrics.map((m) => m.render()).join('');
  }
}

const LATENCY_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Every metric mesh-pep exports, created once per process. */
export function createMetrics(registry = new Registry()) {
  return {
    registry,
    decisions: registry.register(
      new Counter('mesh_pep_decisions_total', 'ext_authz Check decisions', ['domain', 'decision', 'reason']),
    ),
    decisionSeconds: registry.register(
      new Histogram('mesh_pep_decision_duration_seconds', 'Time to decide a Check', LATENCY_BUCKETS_S, ['decision']),
    ),
    extprocOutcomes: registry.register(
      new Counter('mesh_pep_extproc_total', 'ext_proc body phases by outcome', ['domain', 'tier', 'phase', 'outcome']),
    ),
    // Label values are bounded: standard or configured method names, rule names/globs for tools (else
    // `other` / `unlisted`), so a client cannot grow the series with invented names.
    rpcCalls: registry.register(
      new Counter('mesh_pep_rpc_calls_total', 'MCP/A2A JSON-RPC messages by method, tool and decision', ['domain', 'method', 'tool', 'decision']),
    ),
    credentialCache: registry.register(
      new Counter('mesh_pep_credential_cache_total', 'Verified-credential cache lookups', ['result']),
    ),
    policyReloads: registry.register(new Counter('mesh_pep_policy_reloads_total', 'Policy reloads', ['result'])),
    dlpFindings: registry.register(
      new Counter('mesh_pep_dlp_findings_total', 'Leak-guard findings by entity', ['domain', 'entity', 'action']),
    ),
    auditQueueDepth: registry.register(new Gauge('mesh_pep_audit_queue_depth', 'Audit records waiting for fsync')),
    auditFsyncSeconds: registry.register(
      new Histogram('mesh_pep_audit_fsync_duration_seconds', 'Audit group-commit fdatasync latency', LATENCY_BUCKETS_S),
    ),
    auditRecords: registry.register(
      new Counter('mesh_pep_audit_records_total', 'Audit records by result (written, failed, refused)', ['result']),
    ),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
