import fs from 'node:fs';
import path from 'node:path';
import { TemplateSet } from './go-template.js';
import { asObject, parseYaml, parseYamlStream, type Json } from './repo.js';

/**
 * Renders a Helm chart folder the way `helm template` does for the subset of Helm the mesh-pep chart uses:
 * Chart.yaml metadata, values.yaml coalesced with overrides (maps merge, a null override deletes),
 * `.Release`, every `templates/**` file (files starting with `_` only contribute `define`s), NOTES.txt.
 */

export interface Release {
  name: string;
  namespace: string;
}

export interface RenderedChart {
  values: Json;
  /** Rendered text per template path (relative to the chart, e.g. `templates/deployment.yaml`). */
  files: Map<string, string>;
  /** Every non-empty YAML document of every template, in file order. */
  objects: Json[];
  notes: string;
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

function templateFiles(dir: string, rel = 'templates'): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const child = `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...templateFiles(dir, child));
    else out.push(child);
  }
  return out.sort();
}

export function chartValues(chartDir: string, overrides: Json = {}): Json {
  const defaults = asObject(parseYaml(fs.readFileSync(path.join(chartDir, 'values.yaml'), 'utf8'), 'values.yaml'), 'values');
  return coalesce(defaults, overrides);
}

export function renderChart(chartDir: string, release: Release, overrides: Json = {}): RenderedChart {
  const meta = asObject(parseYaml(fs.readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8'), 'Chart.yaml'), 'Chart.yaml');
  const values = chartValues(chartDir, overrides);
  const set = new TemplateSet();
  const files = templateFiles(chartDir);
  for (const file of files) set.add(file, fs.readFileSync(path.join(chartDir, file), 'utf8'));

  const context = {
    Values: values,
    Release: { Name: release.name, Namespace: release.namespace, Service: 'Helm', IsInstall: true, IsUpgrade: false },
    Chart: { Name: meta['name'], Version: meta['version'], AppVersion: meta['appVersion'], Description: meta['description'] },
    Template: { BasePath: `${String(meta['name'])}/templates` },
  };

  const rendered = new Map<string, string>();
  const objects: Json[] = [];
  let notes = '';
  for (const file of files) {
    const base = path.posix.basename(file);
    if (base.startsWith('_')) continue;
    const text = set.render(file, { ...context, Template: { ...context.Template, Name: `${String(meta['name'])}/${file}` } });
    if (base === 'NOTES.txt') {
      notes = text;
      continue;
    }
    rendered.set(file, text);
    for (const doc of parseYamlStream(text, file)) objects.push(asObject(doc, `${file} document`));
  }
  return { values, files: rendered, objects, notes };
}
