import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './command.js';

/** The bundled development policy, resolved from the installed package (works from any cwd). */
export const BUNDLED_POLICY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../config/security_mesh.yaml');

/** Flags beat environment beats the bundled default. */
export function configPath(flag: string | undefined): string {
  return path.resolve(flag ?? process.env.MESH_PEP_CONFIG ?? BUNDLED_POLICY);
}

/** `10m`, `30s`, `1h`, `30d`, `500ms`, or a plain number of milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new UsageError(`"${text}" is not a duration (e.g. 500ms, 30s, 10m, 1h, 30d)`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms']!;
  return Math.round(n * unit);
}

export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}
