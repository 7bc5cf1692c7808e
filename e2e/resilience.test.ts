/**
 * mesh-pep down, slow, restarted mid-traffic, and reloaded with SIGHUP under traffic, through a real
 * Envoy 1.40 with the shipped fail-closed settings (`failure_mode_allow: false`, `status_on_error`
 * 503): every request is either fully processed or refused, and nothing unprocessed reaches the callee.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { h1, type ClientResponse } from './support/client.js';
import { bearer, startStack, type Stack } from './support/stack.js';

let s: Stack;

before(async () => {
  s = await startStack();
});

after(async () => {
  await s?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function put(token: string, key: string): Promise<ClientResponse | Error> {
  return h1(s.port, { method: 'PUT', path: `/memory/store/${key}`, headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ secret: `plaintext-${key}` }) }).catch((e: Error) => e);
}

/** Waits until Envoy gets answers from mesh-pep again (its cluster health check and reconnect). */
async function untilServing(token: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await put(token, 'probe');
    if (!(r instanceof Error) && r.status === 201) return;
    if (Date.now() > deadline) throw new Error(`mesh-pep did not come back: ${r instanceof Error ? r.message : `${r.status} ${r.text()}`}`);
    await sleep(200);
  }
}

/** Nothing that reached the callee since `mark` is plaintext: every body is a RETRIEVAL JWE. */
function assertOnlyCiphertext(mark: number): number {
  const got = s.upstream.since(mark).filter((r) => r.method === 'PUT');
  for (const r of got) {
    assert.equal(r.headers['content-type'], 'application/jose', r.url);
    assert.ok(!r.body.toString('utf8').includes('plaintext-'), `plaintext reached the callee at ${r.url}`);
  }
  return got.length;
}

test('mesh-pep down: Envoy answers 503 (status_on_error) and nothing reaches the callee', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  await s.pep.stop();
  const mark = s.upstream.received.length;
  for (let i = 0; i < 5; i++) {
    const r = await put(token, `down-${i}`);
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.status, 503, r.text());
  }
  assert.equal(s.upstream.since(mark).length, 0);
  await s.restartPep();
  await untilServing(token);
});

test('mesh-pep stalled (SIGSTOP): Check times out, Envoy fails closed, nothing reaches the callee; it serves again after SIGCONT', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const mark = s.upstream.received.length;
  s.pep.signal('SIGSTOP');
  try {
    const results = await Promise.all([0, 1, 2].map((i) => put(token, `stalled-${i}`)));
    for (const r of results) {
      assert.ok(!(r instanceof Error), String(r));
      // 503 when the stall hits Check (ext_authz timeout, status_on_error); 504 when Check answered just
      // before the stop and ext_proc's message_timeout expires instead. Either way: refused.
      assert.ok(r.status === 503 || r.status === 504, `${r.status} ${r.text()}`);
    }
    assert.equal(s.upstream.since(mark).length, 0);
  } finally {
    s.pep.signal('SIGCONT');
  }
  await untilServing(token);
});

test('mesh-pep restarted mid-traffic: each request is stored as ciphertext or refused, never forwarded in plaintext', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const mark = s.upstream.received.length;
  let stop = false;
  const outcomes: Array<ClientResponse | Error> = [];
  const traffic = (async () => {
    for (let i = 0; !stop; i++) outcomes.push(await put(token, `restart-${i}`));
  })();
  const traffic2 = (async () => {
    for (let i = 0; !stop; i++) outcomes.push(await put(token, `restart-b-${i}`));
  })();
  await sleep(300);
  await s.pep.stop();
  await sleep(300);
  await s.restartPep();
  await untilServing(token);
  await sleep(300);
  stop = true;
  await Promise.all([traffic, traffic2]);
  const ok = outcomes.filter((r) => !(r instanceof Error) && r.status === 201).length;
  const refused = outcomes.filter((r) => r instanceof Error || r.status !== 201);
  for (const r of refused) if (!(r instanceof Error)) assert.ok(r.status >= 500, `${r.status} ${r.text()}`);
  assert.ok(ok > 0, 'some requests went through before and after the restart');
  // Every PUT that reached the store was answered 201 to its client (plus the untilServing probes).
  const reached = assertOnlyCiphertext(mark);
  const probes = s.upstream.since(mark).filter((r) => r.url === '/store/probe').length;
  assert.equal(reached - probes, ok);
});

test('SIGHUP reload under traffic: no request fails while the policy changes, and the new policy applies', async () => {
  const executor = await s.token('executor-7', 'EXECUTOR');
  const planner = await s.token('planner-7', 'ORCHESTRATOR');
  const call = (token: string) => h1(s.port, { method: 'POST', path: '/coordination/tasks', headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{"task":"t"}' });
  assert.equal((await call(executor)).status, 200);

  const original = await readFile(s.policyFile, 'utf8');
  const doc = YAML.parse(original) as { security_mesh: { domains: Array<{ name: string; allowed_roles: string[] }> } };
  doc.security_mesh.domains.find((d) => d.name === 'coordination')!.allowed_roles = ['ORCHESTRATOR'];
  let stop = false;
  const seen: ClientResponse[] = [];
  const traffic = (async () => {
    while (!stop) seen.push(await call(planner), await call(executor));
  })();
  try {
    await sleep(200);
    await writeFile(s.policyFile, YAML.stringify(doc));
    s.pep.signal('SIGHUP');
    const deadline = Date.now() + 30_000;
    while (!seen.some((r) => r.status === 403)) {
      if (Date.now() > deadline) throw new Error('the reloaded policy never applied');
      await sleep(100);
    }
    await sleep(200);
  } finally {
    stop = true;
    await traffic;
    await writeFile(s.policyFile, original);
    s.pep.signal('SIGHUP');
  }
  for (const r of seen) {
    if (r.status === 200) continue;
    assert.equal(r.status, 403, `${r.status} ${r.text()}`);
    assert.equal(r.headers['x-mesh-reason'], 'role_not_allowed');
  }
  // The orchestrator was never refused, before, during or after the reload.
  const after = await call(planner);
  assert.equal(after.status, 200);
  const denied = await call(executor);
  assert.ok(denied.status === 403 || denied.status === 200, 'the restored policy may already be back');
  assert.ok(seen.filter((r) => r.status === 200).length > 0);
});
