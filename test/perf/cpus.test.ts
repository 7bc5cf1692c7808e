import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cgroupCpuQuota, containerCpuCount } from '../../src/server/cpus.js';

describe('the CPUs a container may use (--workers auto)', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-cgroup-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  async function cgroup(name: string, files: Record<string, string>): Promise<string> {
    const dir = path.join(root, name);
    for (const [f, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
      await writeFile(path.join(dir, f), text);
    }
    return dir;
  }

  it('reads the cgroup v2 quota, rounding a fractional CPU up', async () => {
    assert.equal(cgroupCpuQuota(await cgroup('v2-limited', { 'cpu.max': '150000 100000\n' })), 1.5);
    assert.equal(containerCpuCount(await cgroup('v2-one', { 'cpu.max': '100000 100000\n' })), 1);
    assert.equal(containerCpuCount(await cgroup('v2-half', { 'cpu.max': '50000 100000\n' })), 1);
    assert.equal(containerCpuCount(await cgroup('v2-1.5', { 'cpu.max': '150000 100000\n' })), Math.min(2, os.availableParallelism()));
  });

  it('never asks for more than the scheduler gives', async () => {
    assert.equal(containerCpuCount(await cgroup('v2-huge', { 'cpu.max': '6400000 100000\n' })), os.availableParallelism());
  });

  it('reads the cgroup v1 quota; -1 and "max" mean unlimited', async () => {
    assert.equal(cgroupCpuQuota(await cgroup('v1', { 'cpu/cpu.cfs_quota_us': '200000\n', 'cpu/cpu.cfs_period_us': '100000\n' })), 2);
    assert.equal(cgroupCpuQuota(await cgroup('v1-unlimited', { 'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n' })), undefined);
    assert.equal(cgroupCpuQuota(await cgroup('v2-unlimited', { 'cpu.max': 'max 100000\n' })), undefined);
    assert.equal(containerCpuCount(await cgroup('v2-unlimited2', { 'cpu.max': 'max 100000\n' })), os.availableParallelism());
  });

  it('without cgroup files (or garbage in them) falls back to the scheduler view', async () => {
    assert.equal(containerCpuCount(path.join(root, 'missing')), os.availableParallelism());
    assert.equal(containerCpuCount(await cgroup('garbage', { 'cpu.max': 'lots of cpus\n' })), os.availableParallelism());
  });
});
