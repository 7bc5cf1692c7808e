import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { latencySummary, type LatencySummary } from './stats.js';

export interface H2loadRun {
  url: string;
  /** Request body (h2load -d: a POST); none sends GETs. */
  dataFile?: string;
  /** Request headers as `name: value`; default the gRPC pair (`content-type: application/grpc`, `te: trailers`). */
  headers?: string[];
  clients: number;
  /** Concurrent streams per client (h2load -m). */
  streams: number;
  durationS: number;
  warmupS: number;
  /** Fixed total rate; split evenly over the clients (h2load's --rps is per client). */
  rps?: number;
  logFile: string;
}

export interface LoadResult extends LatencySummary {
  requests: number;
  failed: number;
  seconds: number;
  rps: number;
}

/** `which h2load`, or undefined. */
export async function findH2load(): Promise<string | undefined> {
  return new Promise((resolve) => execFile('sh', ['-c', 'command -v h2load'], (err, out) => resolve(err ? undefined : out.trim() || undefined)));
}

/**
 * One h2load run with gRPC framing: POST of the data file (one length-prefixed CheckRequest) with
 * `content-type: application/grpc` and `te: trailers`. Latencies come from h2load's per-request log
 * (`--log-file`: start µs, HTTP status, µs to end of response), which covers the measured window only.
 */
export async function runH2load(o: H2loadRun): Promise<LoadResult> {
  await rm(o.logFile, { force: true });
  const args = [
    '-t', '1',
    '-c', String(o.clients),
    '-m', String(o.streams),
    '-D', String(o.durationS),
    '--warm-up-time', String(o.warmupS),
    '--log-file', o.logFile,
  ];
  if (o.dataFile) args.push('-d', o.dataFile);
  for (const h of o.headers ?? ['content-type: application/grpc', 'te: trailers']) args.push('-H', h);
  if (o.rps !== undefined) args.push('--rps', String(Math.max(1, Math.round(o.rps / o.clients))));
  args.push(o.url);
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile('h2load', args, { maxBuffer: 16 * 1024 * 1024 }, (err, out, errOut) => (err ? reject(new Error(`h2load failed: ${errOut || err.message}`)) : resolve(out))),
  );
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(stdout);
  const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  if (!finished || !reqs) throw new Error(`cannot read h2load output:\n${stdout}`);
  const seconds = Number(finished[1]) / (finished[2] === 'ms' ? 1000 : 1);
  const log = await readFile(o.logFile, 'utf8');
  const micros: number[] = [];
  for (const line of log.split('\n')) {
    const cols = line.split('\t');
    if (cols.length >= 3 && cols[1] === '200') micros.push(Number(cols[2]));
  }
  await rm(o.logFile, { force: true });
  return {
    requests: Number(reqs[4]),
    failed: Number(reqs[5]) + Number(reqs[6]) + Number(reqs[7]),
    seconds,
    rps: Number(finished[3]),
    ...latencySummary(micros.map((us) => us / 1000)),
  };
}
