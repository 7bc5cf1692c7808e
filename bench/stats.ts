export interface LatencySummary {
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/** Nearest-rank percentiles of latencies in milliseconds. */
export function latencySummary(ms: number[]): LatencySummary {
  if (ms.length === 0) return { p50Ms: NaN, p99Ms: NaN, p999Ms: NaN, maxMs: NaN };
  const s = Float64Array.from(ms).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { p50Ms: at(0.5), p99Ms: at(0.99), p999Ms: at(0.999), maxMs: s[s.length - 1]! };
}
