import { decodeBody, parseCodings } from '../protect/content-coding.js';
import { gunzipSync } from 'node:zlib';
import type { DlpSettings } from '../config/types.js';
import { DLP_ENTITIES, type DlpEntity } from './entities.js';
import type { Probe, ProbeSet } from './probe-set.js';
import { compileDlp } from './scanner.js';

/** What happened to one probe, however it was run (offline scanner or live server). */
export interface ProbeOutcome {
  probe: Probe;
  /** The guard named the probe's entity (findings), or blocked the body. */
  flagged: boolean;
  /** Something was found at all (for look-alikes: a false positive). */
  anyFinding: boolean;
  /** The planted value is still readable in the body that was forwarded (undefined: not observable, e.g. report mode). */
  leaked: boolean | undefined;
}

export interface HeaderOutcome {
  name: string;
  masked: boolean;
}

interface Tally {
  positives: number;
  caught: number;
  recall: number;
  negatives: number;
  falsePositives: number;
}

export interface ProbeScore {
  positives: number;
  caught: number;
  recall: number;
  negatives: number;
  falsePositives: number;
  falsePositiveRate: number;
  byEntity: Record<string, Tally>;
  byChannel: Record<string, Tally>;
  byTransform: Record<string, Tally>;
  /** Probes that were missed or wrongly flagged: ids, entity, channel and encoding — never the values. */
  misses: Array<{ id: string; kind: Probe['kind']; entity: string; channel: string; encoding: string; transform: string }>;
  /** Entities not scored because the policy does not enable them (or no canary matches the planted format). */
  skipped: string[];
  headerMask: { total: number; masked: number; rate: number; unmasked: string[] } | undefined;
  /** Distinct planted values found in the audit file. */
  audit: { lines: number; leaked: number; leakedEntities: string[] } | undefined;
}

const TARGET_RECALL = 0.99;
const TARGET_FP = 0.01;

/** Entities the settings can be scored on: enabled ones, and CANARY only if a canary matches the planted format. */
export function scorableEntities(settings: DlpSettings, set: ProbeSet): Set<DlpEntity> {
  const enabled = new Set<DlpEntity>(settings.entities.length === 0 ? DLP_ENTITIES : (settings.entities as DlpEntity[]));
  const sample = set.probes.find((p) => p.entity === 'CANARY' && p.kind === 'positive')?.value;
  const canaryMatches = sample !== undefined && settings.canaries.some((c) => {
    const m = /^\/(.+)\/([a-z]*)$/s.exec(c);
    try {
      return new RegExp(m ? m[1] : c, m ? m[2] : '').test(sample);
    } catch {
      return false;
    }
  });
  if (!canaryMatches) enabled.delete('CANARY');
  return enabled;
}

/** Runs the probe set through the scanner in-process, with a domain's `dlp` settings. */
export function runOffline(set: ProbeSet, settings: DlpSettings): ProbeOutcome[] {
  const scanner = compileDlp(settings, { budgetMs: 1000 });
  return set.probes.map((probe) => {
    // The pipeline undoes the declared content coding before the scanner runs; so does the offline run.
    const codings = parseCodings(probe.contentEncoding);
    const plain = codings.length ? decodeBody(probe.body, codings, 64 * 1024 * 1024) : probe.body;
    const r = scanner.scan(plain, probe.contentType);
    const flagged = r.action === 'block' || (r.findings[probe.entity] ?? 0) > 0;
    const forwarded = r.action === 'redact' ? r.body : r.action === 'block' ? undefined : plain;
    const leaked = settings.action === 'report' ? undefined : forwarded === undefined ? false : bodyExposes(forwarded, probe.value);
    return { probe, flagged, anyFinding: Object.keys(r.findings).length > 0 || r.action === 'block', leaked };
  });
}

export function scoreProbes(
  outcomes: readonly ProbeOutcome[],
  scorable: ReadonlySet<string>,
  extra: { headers?: readonly HeaderOutcome[]; auditText?: string; set?: ProbeSet } = {},
): ProbeScore {
  const byEntity: Record<string, Tally> = {};
  const byChannel: Record<string, Tally> = {};
  const byTransform: Record<string, Tally> = {};
  const misses: ProbeScore['misses'] = [];
  const total: Tally = { positives: 0, caught: 0, recall: 0, negatives: 0, falsePositives: 0 };
  const tally = (rec: Record<string, Tally>, k: string): Tally => (rec[k] ??= { positives: 0, caught: 0, recall: 0, negatives: 0, falsePositives: 0 });
  for (const o of outcomes) {
    const p = o.probe;
    if (!scorable.has(p.entity)) continue;
    const cells = [total, tally(byEntity, p.entity), tally(byChannel, p.channel), tally(byTransform, p.transform)];
    if (p.kind === 'positive') {
      const caught = o.flagged && o.leaked !== true;
      for (const c of cells) {
        c.positives++;
        if (caught) c.caught++;
      }
      if (!caught) misses.push({ id: p.id, kind: p.kind, entity: p.entity, channel: p.channel, encoding: p.encoding, transform: p.transform });
    } else {
      for (const c of cells) {
        c.negatives++;
        if (o.anyFinding) c.falsePositives++;
      }
      if (o.anyFinding) misses.push({ id: p.id, kind: p.kind, entity: p.entity, channel: p.channel, encoding: p.encoding, transform: p.transform });
    }
  }
  for (const c of [total, ...Object.values(byEntity), ...Object.values(byChannel), ...Object.values(byTransform)]) c.recall = c.positives === 0 ? 1 : c.caught / c.positives;
  const skipped = DLP_ENTITIES.filter((e) => !scorable.has(e));
  let headerMask: ProbeScore['headerMask'];
  if (extra.headers) {
    const masked = extra.headers.filter((h) => h.masked).length;
    headerMask = { total: extra.headers.length, masked, rate: extra.headers.length === 0 ? 1 : masked / extra.headers.length, unmasked: extra.headers.filter((h) => !h.masked).map((h) => h.name) };
  }
  let audit: ProbeScore['audit'];
  if (extra.auditText !== undefined && extra.set) audit = rescanAudit(extra.auditText, extra.set);
  return {
    positives: total.positives,
    caught: total.caught,
    recall: total.recall,
    negatives: total.negatives,
    falsePositives: total.falsePositives,
    falsePositiveRate: total.negatives === 0 ? 0 : total.falsePositives / total.negatives,
    byEntity,
    byChannel,
    byTransform,
    misses,
    skipped,
    headerMask,
    audit,
  };
}

/** Searches an audit file's text for every planted value, raw and in the escaped forms it would take in JSON or a URL. */
export function rescanAudit(auditText: string, set: ProbeSet): { lines: number; leaked: number; leakedEntities: string[] } {
  const leakedEntities = new Set<string>();
  const leakedValues = new Set<string>();
  for (const p of set.probes) {
    if (p.kind !== 'positive' || leakedValues.has(p.value)) continue;
    const forms = [p.value, JSON.stringify(p.value).slice(1, -1), encodeURIComponent(p.value)];
    if (forms.some((f) => auditText.includes(f))) {
      leakedValues.add(p.value);
      leakedEntities.add(p.entity);
    }
  }
  const leaked = leakedValues.size;
  const lines = auditText.split('\n').filter((l) => l.trim().length > 0).length;
  return { lines, leaked, leakedEntities: [...leakedEntities] };
}

export function targetsMet(score: ProbeScore): boolean {
  const canary = score.byEntity.CANARY;
  return (
    score.recall >= TARGET_RECALL &&
    (canary === undefined || canary.recall === 1) &&
    score.falsePositiveRate <= TARGET_FP &&
    (score.headerMask === undefined || score.headerMask.rate === 1) &&
    (score.audit === undefined || score.audit.leaked === 0)
  );
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

export function formatScore(score: ProbeScore): string {
  const lines: string[] = [];
  lines.push(`recall ${pct(score.recall)} (${score.caught}/${score.positives} planted values caught; target ≥ ${pct(TARGET_RECALL)}, CANARY 100%)`);
  lines.push(`false-positive rate ${pct(score.falsePositiveRate)} (${score.falsePositives}/${score.negatives} look-alikes flagged; target ≤ ${pct(TARGET_FP)})`);
  if (score.headerMask) lines.push(`header mask rate ${pct(score.headerMask.rate)} (${score.headerMask.masked}/${score.headerMask.total} topology headers removed${score.headerMask.unmasked.length ? `; kept: ${score.headerMask.unmasked.join(', ')}` : ''})`);
  if (score.audit) lines.push(`audit re-scan: ${score.audit.leaked} planted values found in ${score.audit.lines} audit lines${score.audit.leakedEntities.length ? ` (${score.audit.leakedEntities.join(', ')})` : ''}`);
  if (score.skipped.length) lines.push(`not scored (not enabled, or no canary matches the planted format): ${score.skipped.join(', ')}`);
  lines.push('');
  lines.push('entity           recall   caught  fp');
  for (const [e, t] of Object.entries(score.byEntity)) {
    lines.push(`${e.padEnd(16)} ${pct(t.recall).padStart(6)}  ${`${t.caught}/${t.positives}`.padStart(6)}  ${t.falsePositives}/${t.negatives}`);
  }
  lines.push('');
  lines.push('channel          recall   caught  fp');
  for (const [c, t] of Object.entries(score.byChannel)) {
    lines.push(`${c.padEnd(16)} ${pct(t.recall).padStart(6)}  ${`${t.caught}/${t.positives}`.padStart(6)}  ${t.falsePositives}/${t.negatives}`);
  }
  lines.push('');
  lines.push('transform        recall   caught  fp');
  for (const [c, t] of Object.entries(score.byTransform)) {
    lines.push(`${c.padEnd(18)} ${pct(t.recall).padStart(6)}  ${`${t.caught}/${t.positives}`.padStart(6)}  ${t.falsePositives}/${t.negatives}`);
  }
  if (score.misses.length) {
    lines.push('');
    lines.push('misses (no values shown):');
    for (const m of score.misses.slice(0, 40)) lines.push(`  ${m.id} ${m.kind === 'positive' ? 'missed' : 'false positive'} ${m.entity} in ${m.channel} (${m.encoding}, ${m.transform})`);
    if (score.misses.length > 40) lines.push(`  … and ${score.misses.length - 40} more`);
  }
  lines.push('');
  lines.push(targetsMet(score) ? 'targets: met' : 'targets: NOT met');
  return lines.join('\n');
}

/**
 * Whether `value` can still be read from a forwarded body, independently of the scanner's own
 * decoders: the body (gunzipped if needed) and every string in it, each also JSON-parsed, URL-decoded
 * and base64-decoded, two levels deep.
 */
export function bodyExposes(body: Uint8Array, value: string): boolean {
  let bytes = Buffer.from(body);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch {
      /* scan as is */
    }
  }
  const seen = new Set<string>();
  const queue: Array<[string, number]> = [[bytes.toString('utf8'), 0]];
  while (queue.length > 0) {
    const [text, depth] = queue.pop() as [string, number];
    if (seen.has(text)) continue;
    seen.add(text);
    if (text.includes(value)) return true;
    if (depth >= 4) continue;
    for (const s of derived(text)) queue.push([s, depth + 1]);
  }
  return false;
}

function derived(text: string): string[] {
  const out: string[] = [];
  try {
    collectStrings(JSON.parse(text), out);
  } catch {
    /* not JSON */
  }
  // NDJSON lines and SSE `data:` fields are JSON documents of their own.
  if (text.includes('\n')) {
    for (const line of text.split(/\r?\n/)) {
      const doc = line.startsWith('data:') ? line.slice(5).trim() : line;
      if (doc.startsWith('{') || doc.startsWith('[')) {
        try {
          collectStrings(JSON.parse(doc), out);
        } catch {
          /* not JSON */
        }
      }
    }
  }
  try {
    out.push(decodeURIComponent(text.replace(/\+/g, ' ')));
  } catch {
    /* not URL-encoded */
  }
  try {
    out.push(JSON.parse(`"${text.replace(/"/g, '\\"')}"`) as string);
  } catch {
    /* no escapes */
  }
  for (const m of text.matchAll(/[A-Za-z0-9+/_-]{16,}={0,2}/g)) {
    out.push(Buffer.from(m[0], /[-_]/.test(m[0]) ? 'base64url' : 'base64').toString('utf8'));
  }
  return out;
}

function collectStrings(v: unknown, out: string[]): void {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) collectStrings(x, out);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) collectStrings(x, out);
}
