import { readFileSync } from 'node:fs';
import os from 'node:os';

/**
 * The CPUs this container may use: the scheduler's view (`os.availableParallelism()`: affinity and
 * cpusets) capped by the cgroup CPU quota. Kubernetes' `resources.limits.cpu` becomes a CFS quota, not
 * an affinity mask, so on a 16-core node a pod limited to 2 CPUs still sees 16 in
 * `availableParallelism()`; sixteen workers would then be throttled against a 2-CPU budget. A fractional
 * quota rounds up (1.5 CPUs → 2), and there is always at least one.
 */
export function containerCpuCount(cgroupRoot = '/sys/fs/cgroup'): number {
  const cpus = os.availableParallelism();
  const quota = cgroupCpuQuota(cgroupRoot);
  return quota === undefined ? cpus : Math.max(1, Math.min(cpus, Math.ceil(quota)));
}

/** CPUs granted by the cgroup quota (v2 `cpu.max`, else v1 `cfs_quota_us / cfs_period_us`); undefined = unlimited or unknown. */
export function cgroupCpuQuota(cgroupRoot = '/sys/fs/cgroup'): number | undefined {
  const v2 = readText(`${cgroupRoot}/cpu.max`);
  if (v2 !== undefined) {
    const [quota, period] = v2.trim().split(/\s+/);
    return ratio(quota, period);
  }
  const quota = readText(`${cgroupRoot}/cpu/cpu.cfs_quota_us`) ?? readText(`${cgroupRoot}/cpu,cpuacct/cpu.cfs_quota_us`);
  const period = readText(`${cgroupRoot}/cpu/cpu.cfs_period_us`) ?? readText(`${cgroupRoot}/cpu,cpuacct/cpu.cfs_period_us`);
  return ratio(quota?.trim(), period?.trim());
}

function ratio(quota: string | undefined, period: string | undefined): number | undefined {
  if (quota === undefined || period === undefined || quota === 'max') return undefined;
  const q = Number(quota);
  const p = Number(period);
  // v1 writes -1 for "no limit".
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return q / p;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
