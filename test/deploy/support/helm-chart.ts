import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { asObject, parseYaml, parseYamlStream, repoPath, type Json } from './repo.js';

/**
 * The chart as the real helm (the pinned version from scripts/ensure-helm.sh) renders it. When helm cannot
 * be had, the first call throws with the script's reason, so every chart test fails instead of skipping.
 */

export interface Release {
  name: string;
  namespace: string;
}

export interface RenderedChart {
  /** Every non-empty YAML document `helm template` printed, in order. */
  objects: Json[];
}

let helmBinary: string | undefined;

/** Absolute path of the pinned helm, found or built by scripts/ensure-helm.sh (once per process). */
export function helm(): string {
  if (helmBinary) return helmBinary;
  const run = spawnSync('bash', [repoPath('scripts', 'ensure-helm.sh')], { encoding: 'utf8', timeout: 20 * 60_000 });
  const found = run.stdout.trim().split('\n').pop() ?? '';
  if (run.status !== 0 || !found || !fs.existsSync(found)) {
    throw new Error(`scripts/ensure-helm.sh could not provide helm (exit ${String(run.status)}): ${run.stderr.trim()}`);
  }
  helmBinary = found;
  return found;
}

function isMap(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Helm's value coalescing: override maps merge into defaults; lists and scalars replace; null deletes. */
export function coalesce(defaults: Json, overrides: Json): Json {
  const out: Json = { ...defaults };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === null) delete out[key];
    else if (isMap(value) && isMap(out[key])) out[key] = coalesce(out[key] as Json, value);
    else out[key] = value;
  }
  return out;
}

/** values.yaml with the overrides applied (for checks of values.schema.json with ajv). */
export function chartValues(chartDir: string, overrides: Json = {}): Json {
  const defaults = asObject(parseYaml(fs.readFileSync(path.join(chartDir, 'values.yaml'), 'utf8'), 'values.yaml'), 'values');
  return coalesce(defaults, overrides);
}

export interface HelmRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs helm with the overrides in a values file (JSON is YAML), in an empty KUBECONFIG: no cluster is used. */
export function runHelm(args: readonly string[], overrides: Json = {}): HelmRun {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-pep-helm-'));
  try {
    const values = path.join(dir, 'overrides.yaml');
    fs.writeFileSync(values, JSON.stringify(overrides));
    const env = {
      ...process.env,
      KUBECONFIG: path.join(dir, 'kubeconfig'),
      HELM_CACHE_HOME: path.join(dir, 'cache'),
      HELM_CONFIG_HOME: path.join(dir, 'config'),
      HELM_DATA_HOME: path.join(dir, 'data'),
    };
    const run = spawnSync(helm(), [...args, '-f', values], { encoding: 'utf8', env, timeout: 120_000, maxBuffer: 64 << 20 });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `helm template` output, parsed; throws with helm's message when it refuses the values. */
export function renderChart(chartDir: string, release: Release, overrides: Json = {}): RenderedChart {
  const run = runHelm(['template', release.name, chartDir, '--namespace', release.namespace], overrides);
  if (run.status !== 0) throw new Error(`helm template failed: ${run.stderr.trim()}`);
  const objects = parseYamlStream(run.stdout, 'helm template').map((d) => asObject(d, 'helm template document'));
  return { objects };
}

/** NOTES.txt as `helm install --dry-run=client` renders it (`helm template` does not render notes). */
export function chartNotes(chartDir: string, release: Release, overrides: Json = {}): string {
  const install = runHelm(['install', release.name, chartDir, '--namespace', release.namespace, '--dry-run=client'], overrides);
  if (install.status !== 0) throw new Error(`helm install --dry-run=client failed: ${install.stderr.trim()}`);
  const at = install.stdout.indexOf('\nNOTES:\n');
  if (at < 0) throw new Error('helm install --dry-run=client printed no NOTES');
  return install.stdout.slice(at + '\nNOTES:\n'.length);
}

/** helm's refusal (stderr) for values that must not render; throws if helm renders them. */
export function renderRefusal(chartDir: string, release: Release, overrides: Json): string {
  const run = runHelm(['template', release.name, chartDir, '--namespace', release.namespace], overrides);
  if (run.status === 0) throw new Error('helm template rendered values that should have been refused');
  return run.stderr;
}

/** `helm lint --strict` for the chart with the overrides. */
export function lintChart(chartDir: string, overrides: Json = {}): HelmRun {
  return runHelm(['lint', '--strict', chartDir], overrides);
}
