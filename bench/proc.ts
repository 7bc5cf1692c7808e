import { readFile } from 'node:fs/promises';

/**
 * Resource use of a server process and its children (cluster workers) from /proc, for the benchmark and
 * the soak: a `mesh-pep serve` with workers is several processes.
 */
async function processTree(pid: number): Promise<number[]> {
  const out: number[] = [];
  const visit = async (p: number) => {
    out.push(p);
    const kids = await readFile(`/proc/${p}/task/${p}/children`, 'utf8').then((t) => t.trim(), () => '');
    for (const k of kids ? kids.split(/\s+/) : []) await visit(Number(k));
  };
  await visit(pid);
  return out;
}

/** Resident memory of a process and its children, in MB: the sum and the largest one. */
export async function rssMb(pid: number): Promise<{ total: number; largest: number }> {
  const kib = await Promise.all(
    (await processTree(pid)).map((p) =>
      readFile(`/proc/${p}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0), () => 0),
    ),
  );
  return { total: kib.reduce((a, b) => a + b, 0) / 1024, largest: Math.max(0, ...kib) / 1024 };
}

/** CPU time (user + system) of a process and its children, in µs. */
export async function cpuUs(pid: number): Promise<number> {
  const ticks = await Promise.all(
    (await processTree(pid)).map((p) =>
      readFile(`/proc/${p}/stat`, 'utf8').then(
        (stat) => {
          const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          return Number(fields[11]) + Number(fields[12]);
        },
        () => 0,
      ),
    ),
  );
  return (ticks.reduce((a, b) => a + b, 0) * 1e6) / 100; // USER_HZ is 100 on Linux
}
