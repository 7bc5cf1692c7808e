import fs from 'node:fs';
import { asObject, parseYaml, repoPath, type Json } from './repo.js';

/**
 * The values combinations the README documents: the defaults, and every file in helm/examples/ (each
 * `helm install ... -f helm/examples/<name>.yaml` in the README). Keyed by file name without `.yaml`.
 */
function load(): Record<string, Json> {
  const dir = repoPath('helm', 'examples');
  const out: Record<string, Json> = { defaults: {} };
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    out[file.slice(0, -'.yaml'.length)] = asObject(parseYaml(fs.readFileSync(`${dir}/${file}`, 'utf8'), `helm/examples/${file}`) ?? {}, file);
  }
  return out;
}

export const CHART_COMBINATIONS: Readonly<Record<string, Json>> = load();

export function combination(name: string): Json {
  const found = CHART_COMBINATIONS[name];
  if (!found) throw new Error(`no helm/examples/${name}.yaml`);
  return found;
}
