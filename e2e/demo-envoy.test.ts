/**
 * `npm run demo:envoy`, exactly as the README shows it: real Envoy, mesh-pep, Jaeger and the three demo
 * agents on this machine. The demo itself waits until Jaeger holds every hop's spans; this test checks
 * what it printed and that it exits cleanly.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { REPO_ROOT } from '../tools/envoy/binary.js';

test('npm run demo:envoy prints the hop table, the audit chain and a Jaeger trace per hop, then exits 0', async () => {
  const child = spawn('npm', ['run', 'demo:envoy'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 0, `${out}\n${err}`);

  const row = (hop: string) => {
    const line = out.split('\n').find((l) => l.startsWith(hop));
    assert.ok(line, `a row for "${hop}" in:\n${out}`);
    return line;
  };
  // Allowed hops: what the callee really received after Envoy and mesh-pep.
  const plan = row('orchestrator → coordination: plan step');
  assert.match(plan, /ALLOW 200/);
  assert.match(plan, /callee sees agent id orchestrator-1/);
  assert.match(plan, /removed: [^;]*authorization/);
  assert.match(plan, /spoofed x-agent-id, x-mesh-domain replaced/);
  assert.match(plan, /body → RETRIEVAL \(application\/jose/);
  assert.match(row('retriever → memory: write a note'), /ALLOW 201 .*the store holds application\/jose, \d+ B, 5 dot-separated parts/);
  // The read comes back decrypted for the caller, with the card number the leak guard redacted on the way in.
  assert.match(row('retriever → memory: read it back'), /ALLOW 200 .*caller got application\/json: .*\[REDACTED:CREDIT_CARD\]/);
  assert.match(row('analyst → enclave: PII inference'), /ALLOW 200 .*callee sees pseudonym .*body → COMPUTATION \(application\/jose/);
  assert.match(row('analyst → models: score features (FHE)'), /ALLOW 200 .*body → FHE/);
  // Denied hops: Envoy's local reply carrying mesh-pep's reason.
  assert.match(row('retriever → models: wrong role'), /DENY 403 role_not_allowed/);
  assert.match(row('unknown caller, no credential'), /DENY 401 missing_credential/);
  assert.match(row('forged credential'), /DENY 401 invalid_credential/);
  assert.match(row('analyst → enclave: leaks an SSN'), /DENY 403 dlp_blocked/);

  assert.match(out, /Audit: \d+ hash-chained records in .* \(chain verified;/);
  assert.match(out, /Jaeger UI: http:\/\/127\.0\.0\.1:\d+ /);
  const traces = out.match(/http:\/\/127\.0\.0\.1:\d+\/trace\/[0-9a-f]{32}/g) ?? [];
  assert.equal(new Set(traces).size, 9, `one trace per hop:\n${out}`);
});
