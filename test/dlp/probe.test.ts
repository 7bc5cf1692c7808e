import { decodeBody, parseCodings } from '../../src/protect/content-coding.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { DLP_ENTITIES } from '../../src/dlp/index.js';
import { PROBE_CHANNELS, PROBE_TRANSFORMS, buildProbeSet } from '../../src/dlp/probe-set.js';
import { bodyExposes, formatScore, rescanAudit, runOffline, scorableEntities, scoreProbes, targetsMet, type ProbeOutcome } from '../../src/dlp/probe-score.js';

const set = buildProbeSet();

test('the probe set covers every entity in every channel, as positives and look-alikes', () => {
  for (const entity of DLP_ENTITIES) {
    for (const channel of PROBE_CHANNELS) {
      const cell = set.probes.filter((p) => p.entity === entity && p.channel === channel);
      assert.ok(cell.some((p) => p.kind === 'positive'), `${entity} positive in ${channel}`);
      assert.ok(cell.some((p) => p.kind === 'negative'), `${entity} look-alike in ${channel}`);
    }
  }
  const encodings = new Set(set.probes.map((p) => p.encoding));
  for (const e of ['json', 'json-in-json', 'base64', 'url', 'form', 'gzip', 'escaped', 'text']) assert.ok(encodings.has(e), e);
  assert.ok(set.headers.length >= 20);
  // Deterministic per seed, except the private keys, which are minted fresh for every run.
  const stable = (ps: typeof set.probes) => ps.filter((p) => p.entity !== 'PRIVATE_KEY').map((p) => p.value);
  assert.deepEqual(stable(buildProbeSet().probes), stable(set.probes));
});

test('every planted value is really in its body (so recall measures the scanner, not the generator)', () => {
  // Transformed values are hidden by design (zero-width, hex, …); each transform is present in the set.
  const transforms = new Set(set.probes.map((p) => p.transform));
  for (const t of PROBE_TRANSFORMS) assert.ok(transforms.has(t), t);
  for (const p of set.probes.filter((x) => x.kind === 'positive' && x.transform === 'none')) {
    assert.ok(bodyExposes(p.body, p.value), `${p.id} ${p.entity} ${p.encoding}`);
  }
  const gz = set.probes.find((p) => p.encoding === 'gzip');
  assert.ok(gz && gunzipSync(gz.body).length > 0);
});

test('offline run against the scanner meets the issue targets (recall, CANARY, false positives)', () => {
  const settings = { action: 'redact' as const, entities: [], canaries: [set.canaryPattern] };
  const score = scoreProbes(runOffline(set, settings), scorableEntities(settings, set));
  assert.equal(score.skipped.length, 0);
  assert.ok(score.recall >= 0.98, formatScore(score));
  assert.equal(score.byEntity.CANARY.recall, 1);
  assert.ok(score.falsePositiveRate <= 0.02, formatScore(score));
  assert.ok(targetsMet(score));
});

test('block and report modes are scored by findings; leaks are only checked where a body is forwarded', () => {
  for (const action of ['block', 'report'] as const) {
    const settings = { action, entities: [], canaries: [set.canaryPattern] };
    const outcomes = runOffline(set, settings);
    if (action === 'report') assert.ok(outcomes.every((o) => o.leaked === undefined));
    assert.ok(scoreProbes(outcomes, scorableEntities(settings, set)).recall >= 0.98);
  }
});

test('entities the policy does not enable, and CANARY without a matching canary, are not scored', () => {
  const settings = { action: 'redact' as const, entities: ['EMAIL', 'CANARY'], canaries: [] };
  const scorable = scorableEntities(settings, set);
  assert.deepEqual([...scorable], ['EMAIL']);
  const score = scoreProbes(runOffline(set, settings), scorable);
  assert.deepEqual(Object.keys(score.byEntity), ['EMAIL']);
  assert.equal(score.skipped.length, DLP_ENTITIES.length - 1);
});

test('scorer arithmetic: misses, leaks and false positives', () => {
  const pos = set.probes.filter((p) => p.kind === 'positive' && p.entity === 'EMAIL').slice(0, 4);
  const neg = set.probes.filter((p) => p.kind === 'negative' && p.entity === 'EMAIL').slice(0, 2);
  const outcomes: ProbeOutcome[] = [
    { probe: pos[0], flagged: true, anyFinding: true, leaked: false },
    { probe: pos[1], flagged: true, anyFinding: true, leaked: true }, // flagged but still readable: a miss
    { probe: pos[2], flagged: false, anyFinding: false, leaked: true },
    { probe: pos[3], flagged: true, anyFinding: true, leaked: undefined },
    { probe: neg[0], flagged: false, anyFinding: true, leaked: undefined },
    { probe: neg[1], flagged: false, anyFinding: false, leaked: undefined },
  ];
  const score = scoreProbes(outcomes, new Set(['EMAIL']), { headers: [{ name: 'via', masked: true }, { name: 'x-real-ip', masked: false }] });
  assert.equal(score.recall, 0.5);
  assert.equal(score.falsePositiveRate, 0.5);
  assert.deepEqual(score.headerMask, { total: 2, masked: 1, rate: 0.5, unmasked: ['x-real-ip'] });
  assert.equal(score.misses.length, 3);
  assert.equal(targetsMet(score), false);
  const printed = formatScore(score);
  for (const o of outcomes) assert.ok(!printed.includes(o.probe.value), 'the report never prints planted values');
});

test('audit re-scan finds planted values in raw and escaped form, and nothing in a clean file', () => {
  const p = set.probes.find((x) => x.kind === 'positive' && x.entity === 'PRIVATE_KEY');
  assert.ok(p);
  const clean = `${JSON.stringify({ event: 'dlp.finding', findings: { PRIVATE_KEY: 1 } })}\n`;
  assert.deepEqual(rescanAudit(clean, set), { lines: 1, leaked: 0, leakedEntities: [] });
  const dirty = `${clean}${JSON.stringify({ event: 'oops', note: p.value })}\n`;
  assert.deepEqual(rescanAudit(dirty, set), { lines: 2, leaked: 1, leakedEntities: ['PRIVATE_KEY'] });
});

test('mesh-pep probe --offline: prints the score, never a planted value, exit 0 when targets are met', async () => {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const { execFile } = await import('node:child_process');
  const dir = await mkdtemp(join(tmpdir(), 'mesh-pep-probe-cli-'));
  try {
    const policy = join(dir, 'policy.yaml');
    await writeFile(policy, [
      'security_mesh:',
      '  identity: {issuer: "https://issuer.test", audiences: ["agent-mesh"], jwks_file: keys/issuer.jwks.json}',
      '  keys: {dir: keys}',
      '  audit: {file: audit/audit.jsonl}',
      '  domains:',
      '    - name: notes',
      '      tier: RETRIEVAL',
      '      allowed_roles: [RETRIEVER]',
      '      dlp: {action: redact, canaries: ["MESHPEP-CANARY-[0-9a-f]{16}"]}',
      '',
    ].join('\n'));
    const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    const { code, stdout } = await new Promise<{ code: number; stdout: string }>((done) => {
      execFile(process.execPath, [main, 'probe', '--offline', '--config', policy, '--seed', '5'], (err, out) => {
        done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout: out });
      });
    });
    assert.equal(code, 0, stdout);
    assert.match(stdout, /== domain notes \(offline\)/);
    assert.match(stdout, /recall (?:100\.0|99\.[0-9])%/);
    assert.match(stdout, /targets: met/);
    const planted = buildProbeSet({ seed: 5 }).probes.filter((p) => p.kind === 'positive' && p.entity !== 'PRIVATE_KEY');
    for (const p of planted) assert.ok(!stdout.includes(p.value), `${p.entity} value printed`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('redacted output re-scans clean: markers and re-encoded layers hold nothing', async () => {
  const { compileDlp } = await import('../../src/dlp/index.js');
  const scanner = compileDlp({ action: 'redact', entities: [], canaries: [set.canaryPattern] }, { budgetMs: 60_000 });
  for (const p of set.probes.filter((x) => x.kind === 'positive')) {
    // As the pipeline does: the declared content coding is undone before the scan.
    const body = p.contentEncoding && p.contentEncoding !== 'gzip' ? decodeBody(p.body, parseCodings(p.contentEncoding), 1 << 26) : p.body;
    const first = scanner.scan(body, p.contentType);
    assert.equal(first.action, 'redact', p.id);
    assert.ok(first.body);
    const second = scanner.scan(first.body, p.contentType);
    assert.deepEqual(second.findings, {}, `${p.id} ${p.entity} ${p.encoding}`);
  }
});
