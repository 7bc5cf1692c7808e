import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const DEMO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/demo/main.js');

test('npm run demo: every hop behaves as the README shows, and the audit chain verifies', () => {
  const run = spawnSync(process.execPath, [DEMO, '--cleanup'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, LOG_LEVEL: 'silent' } });
  assert.equal(run.status, 0, run.stderr);
  const out = run.stdout;
  const row = (hop: string) => out.split('\n').find((l) => l.startsWith(hop)) ?? assert.fail(`row "${hop}" in\n${out}`);
  assert.match(row('orchestrator → executor'), /ALLOW 200 .*agent id orchestrator-1.*body → RETRIEVAL/);
  assert.match(row('retriever → memory: write'), /ALLOW 204 .*pseudonym ap_.*removed: authorization, x-forwarded-for.*body → RETRIEVAL \(application\/jose/);
  assert.match(row('  (what the memory store holds)'), /application\/jose: eyJ/);
  assert.match(row('retriever → memory: read'), /\[REDACTED:CREDIT_CARD\]/);
  assert.ok(!out.includes('4111 1111 1111 1111'), 'the card number never comes back');
  assert.match(row('retriever → models'), /DENY 403 role_not_allowed/);
  assert.match(row('retriever token replayed'), /DENY 403 identity_mismatch/);
  assert.match(row('unknown caller'), /DENY 401 missing_credential/);
  assert.match(row('analyst → enclave: PII'), /ALLOW 200 .*body → COMPUTATION.*opened inside the enclave: income, debts/);
  assert.match(row('analyst → enclave: leaks'), /DENY 403 dlp_blocked/);
  const fhe = row('analyst → models: score');
  assert.match(fhe, /ALLOW 200 .*body → FHE/);
  const score = Number(/"score":(-?[\d.e-]+)/.exec(fhe)?.[1]);
  const expected = Number(/w·x \+ b = (-?[\d.]+)/.exec(out)?.[1]);
  assert.ok(Math.abs(score - expected) / Math.abs(expected) < 1e-6, `FHE score ${score} vs plaintext ${expected}`);
  assert.match(out, /Audit: \d+ hash-chained records in .*\(chain verified\)/);
});
