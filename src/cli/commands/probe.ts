import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadPolicyFile } from '../../config/load.js';
import type { DomainPolicy } from '../../config/types.js';
import { buildProbeSet, type ProbeSet } from '../../dlp/probe-set.js';
import { formatScore, runOffline, scorableEntities, scoreProbes, targetsMet, type ProbeScore } from '../../dlp/probe-score.js';
import { UsageError, type CliCommand } from '../command.js';
import { configPath } from '../options.js';

function positiveInt(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a non-negative integer`);
  return n;
}

export const command: CliCommand = {
  name: 'probe',
  summary: 'run AgentLeak-style leak probes against the leak guard and score them',
  help: `Usage: mesh-pep probe [--config FILE] [--server HOST:PORT | --offline] [--domain D ...]
                      [--direction request|response] [--audit FILE] [--seed N]
                      [--positives N] [--negatives N] [--json]

Builds a synthetic probe set: planted values of every leak-guard entity in chat messages, tool-call
arguments, tool results, memory writes, reasoning summaries and log lines (wrapped in JSON-in-JSON,
base64, URL and form encoding, backslash escapes and gzip), look-alikes that must not be flagged, and
the topology headers masking domains must strip. Then, for every domain with a \`dlp\` block (or each
--domain):
  live (default)  sends each probe through the server at --server the way Envoy does: ext_authz Check
                  with a dev credential for the domain, then an ext_proc stream with the body;
  --offline       scans each probe in-process with the domain's dlp settings (no server needed).
Prints recall per entity and channel, the false-positive rate, the header mask rate (live, masking
domains) and, with --audit, a re-scan of the audit file for any planted value. Values are never printed.
  --server H:P     mesh-pep gRPC address (default 127.0.0.1:9001)
  --direction D    live: the probe body is the caller's request (default) or the callee's response
  --audit FILE     the server's audit file: findings per decision, and the re-scan for planted values
  --seed N         probe-set seed (default 20261128); --positives/--negatives per entity and channel (2/1)
  --json           print the scores as JSON
CANARY is scored only when one of the domain's dlp.canaries matches the planted format
MESHPEP-CANARY-[0-9a-f]{16}; add that pattern to the policy to include it.
Exit code: 0 all targets met, 3 a target missed, 1 the server could not be reached.
Targets: recall >= 98% (CANARY 100%), false positives <= 2%, headers 100% masked, 0 values in the audit.`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        server: { type: 'string' },
        offline: { type: 'boolean', default: false },
        domain: { type: 'string', multiple: true, default: [] },
        audit: { type: 'string' },
        direction: { type: 'string', default: 'request' },
        seed: { type: 'string' },
        positives: { type: 'string' },
        negatives: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    });
    if (values.offline && values.server !== undefined) throw new UsageError('--offline and --server exclude each other');
    const direction = values.direction;
    if (direction !== 'request' && direction !== 'response') throw new UsageError('--direction must be request or response');
    const { policy } = await loadPolicyFile(configPath(values.config));
    const wanted = values.domain!;
    for (const d of wanted) if (!policy.domainsByName.has(d)) throw new UsageError(`domain "${d}" is not in ${policy.source}`);
    const domains: DomainPolicy[] = wanted.length > 0 ? wanted.map((d) => policy.domainsByName.get(d) as DomainPolicy) : policy.domains.filter((d) => d.dlp !== undefined);
    if (domains.length === 0) throw new UsageError(`no domain in ${policy.source} has a dlp block; add one or name a domain with --domain`);
    const set = buildProbeSet({
      seed: positiveInt(values.seed, '--seed', 20261128),
      positives: positiveInt(values.positives, '--positives', 2),
      negatives: positiveInt(values.negatives, '--negatives', 1),
    });
    const auditText = values.audit === undefined ? undefined : await readFile(values.audit, 'utf8').catch((e: Error) => {
      throw new UsageError(`--audit ${values.audit}: ${e.message}`);
    });

    const results: Array<{ domain: string; mode: string; score: ProbeScore; errors: Record<string, number>; unobserved: number }> = [];
    for (const domain of domains) {
      const settings = domain.dlp ?? { action: 'redact' as const, entities: [], canaries: [] };
      if (values.offline) {
        const score = scoreProbes(runOffline(set, settings), scorableEntities(settings, set), { auditText, set });
        results.push({ domain: domain.name, mode: 'offline', score, errors: {}, unobserved: 0 });
        continue;
      }
      if (!domain.dlp) process.stderr.write(`mesh-pep probe: domain ${domain.name} has no dlp block; every planted value is expected to pass\n`);
      const { runLive } = await import('../../dlp/probe-live.js');
      let live;
      try {
        live = await runLive({ server: values.server ?? '127.0.0.1:9001', policy, domain, set, auditFile: values.audit, direction });
      } catch (e) {
        process.stderr.write(`mesh-pep probe: ${(e as Error).message}\n`);
        return 1;
      }
      const text = values.audit === undefined ? undefined : await readFile(values.audit, 'utf8');
      const score = scoreProbes(live.outcomes, scorableEntities(settings, set), { headers: live.headers, auditText: text, set });
      results.push({ domain: domain.name, mode: `live ${values.server ?? '127.0.0.1:9001'}, ${direction}s`, score, errors: live.errors, unobserved: live.unobserved });
      if (live.outcomes.length > 0 && Object.values(live.errors).reduce((a, b) => a + b, 0) === live.outcomes.length) {
        printResults(results, values.json!, set);
        process.stderr.write('mesh-pep probe: the server processed none of the probes\n');
        return 1;
      }
    }
    printResults(results, values.json!, set);
    return results.every((r) => targetsMet(r.score) && Object.keys(r.errors).length === 0) ? 0 : 3;
  },
};

function printResults(results: Array<{ domain: string; mode: string; score: ProbeScore; errors: Record<string, number>; unobserved: number }>, json: boolean, set: ProbeSet): void {
  if (json) {
    process.stdout.write(JSON.stringify({ seed: set.seed, probes: set.probes.length, results }, null, 2) + '\n');
    return;
  }
  const out: string[] = [`probe set: seed ${set.seed}, ${set.probes.length} probes (${set.probes.filter((p) => p.kind === 'positive').length} planted, ${set.probes.filter((p) => p.kind === 'negative').length} look-alikes), ${set.headers.length} topology headers`];
  for (const r of results) {
    out.push('', `== domain ${r.domain} (${r.mode})`, formatScore(r.score));
    for (const [reason, n] of Object.entries(r.errors)) out.push(`error: ${n} probe(s): ${reason}`);
    if (r.unobserved > 0) out.push(`note: ${r.unobserved} probe(s) could not be observed (pass --audit FILE to read findings from the audit log)`);
  }
  process.stdout.write(out.join('\n') + '\n');
}
