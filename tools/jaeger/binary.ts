/**
 * Finds the real Jaeger the tracing tests, the Envoy demo and CI send spans to, or builds it.
 *
 * Jaeger v1.75.0's `cmd/jaeger` is the OpenTelemetry-Collector-based Jaeger v2 binary. `go install
 * …/cmd/jaeger@v1.75.0` is refused because the module's go.mod has `replace` directives, so the build
 * takes the module source from the Go module proxy (`go mod download`) and runs `go build` inside it,
 * into the git-ignored `.cache/bin/`. The version is stamped in with -ldflags, as Jaeger's own Makefile
 * does, so `jaeger version` proves which release runs. Nothing here ever skips: when Jaeger cannot be
 * had the caller gets an error that says why and how to fix it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../envoy/binary.js';

const run = promisify(execFile);

export const JAEGER_MODULE = 'github.com/jaegertracing/jaeger';
export const JAEGER_VERSION = 'v1.75.0';
export const JAEGER_BIN = path.join(REPO_ROOT, '.cache', 'bin', 'jaeger');

export class JaegerUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JaegerUnavailableError';
  }
}

export interface JaegerBinary {
  path: string;
  /** e.g. "v1.75.0", as `jaeger version` reports it. */
  version: string;
}

async function versionOf(bin: string): Promise<string> {
  // `jaeger version` prints {"gitCommit":…,"gitVersion":…,"buildDate":…} on stdout.
  const { stdout } = await run(bin, ['version'], { timeout: 30_000 });
  const info = JSON.parse(stdout.trim()) as { gitVersion?: unknown };
  return typeof info.gitVersion === 'string' ? info.gitVersion : '';
}

/** Builds the pinned release from the module proxy into `out`; `log` hears each step. */
export async function buildJaeger(out: string, log: (line: string) => void): Promise<void> {
  const step = async (what: string, cmd: string, args: string[], cwd?: string): Promise<string> => {
    try {
      const { stdout } = await run(cmd, args, { cwd, timeout: 1_800_000, maxBuffer: 64 * 1024 * 1024, });
      return stdout;
    } catch (e) {
      const err = e as Error & { stderr?: string; code?: string };
      const why = err.code === 'ENOENT' ? `${cmd} is not installed (Jaeger is built with Go >= 1.24: apt-get install golang-go, or https://go.dev/dl)` : (err.stderr || err.message).trim().slice(-3_000);
      throw new JaegerUnavailableError(`could not build Jaeger ${JAEGER_VERSION}: ${what} failed: ${why}`);
    }
  };
  log(`downloading ${JAEGER_MODULE}@${JAEGER_VERSION} from the Go module proxy`);
  const info = JSON.parse(await step('go mod download', 'go', ['mod', 'download', '-json', `${JAEGER_MODULE}@${JAEGER_VERSION}`], REPO_ROOT)) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new JaegerUnavailableError(`go mod download gave no module folder: ${info.Error ?? 'no Dir'}`);
  await mkdir(path.dirname(out), { recursive: true });
  log(`building ./cmd/jaeger into ${path.relative(REPO_ROOT, out)} (several minutes on 2 CPUs the first time)`);
  await step('go build', 'go', ['build', '-trimpath', '-ldflags', `-X ${JAEGER_MODULE}/internal/version.latestVersion=${JAEGER_VERSION}`, '-o', out, './cmd/jaeger'], info.Dir);
}

/**
 * Jaeger v1.75.0, in this order: $MESH_PEP_JAEGER, then `.cache/bin/jaeger`; else it is built there.
 * A binary that does not report v1.75.0 (another release, or one built without the version stamp) is
 * rebuilt rather than trusted.
 */
export async function ensureJaeger(opts: { install?: boolean; log?: (line: string) => void } = {}): Promise<JaegerBinary> {
  const log = opts.log ?? (() => {});
  const check = async (bin: string): Promise<string> => {
    try {
      return await versionOf(bin);
    } catch (e) {
      return `unusable (${(e as Error).message.split('\n')[0]})`;
    }
  };
  const fromEnv = process.env.MESH_PEP_JAEGER;
  if (fromEnv) {
    const v = await check(fromEnv);
    if (v === JAEGER_VERSION) return { path: fromEnv, version: v };
    throw new JaegerUnavailableError(`MESH_PEP_JAEGER=${fromEnv} is not Jaeger ${JAEGER_VERSION} (version: ${v || 'none stamped'})`);
  }
  if (existsSync(JAEGER_BIN)) {
    const v = await check(JAEGER_BIN);
    if (v === JAEGER_VERSION) return { path: JAEGER_BIN, version: v };
    log(`${path.relative(REPO_ROOT, JAEGER_BIN)} reports version "${v}", not ${JAEGER_VERSION}: rebuilding`);
  }
  if (opts.install === false) {
    throw new JaegerUnavailableError(`Jaeger ${JAEGER_VERSION} not found at ${JAEGER_BIN}; run node dist/tools/jaeger/ensure-cli.js to build it`);
  }
  await buildJaeger(JAEGER_BIN, log);
  const v = await check(JAEGER_BIN);
  if (v !== JAEGER_VERSION) throw new JaegerUnavailableError(`built ${JAEGER_BIN}, but it reports version "${v}", not ${JAEGER_VERSION}`);
  return { path: JAEGER_BIN, version: v };
}
