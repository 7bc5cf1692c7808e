/**
 * Payload protection through Envoy 1.40 in the shipped BUFFERED mode: what the callee really holds
 * and what the caller really gets back, per tier (RETRIEVAL, COMPUTATION TEE and MPC, FHE), the leak
 * guard both ways, chunked requests, and a body over the domain's limit.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { h1, h2 } from './support/client.js';
import { bearer, startStack, type Stack } from './support/stack.js';

let s: Stack;

before(async () => {
  s = await startStack();
});

after(async () => {
  await s?.stop();
});

const CANARY = 'MESHPEP-CANARY-0123456789abcdef';
const json = { 'content-type': 'application/json' };

test('RETRIEVAL: the store holds only a JWE for the domain; reading it back returns the plaintext', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const doc = { note: 'the launch is on Tuesday', tags: ['plan', 'q3'] };
  const put = await h1(s.port, { method: 'PUT', path: '/memory/store/note-1', headers: { ...bearer(token), ...json }, body: JSON.stringify(doc) });
  assert.equal(put.status, 201, put.text());
  const stored = s.upstream.store.get('/store/note-1')!;
  assert.equal(stored.contentType, 'application/jose');
  const compact = stored.body.toString('utf8');
  assert.equal(compact.split('.').length, 5);
  assert.ok(!compact.includes('Tuesday'));
  const hdr = decodeProtectedHeader(compact);
  assert.equal(hdr.enc, 'A256GCM');
  assert.ok(hdr.alg === 'A256KW' || hdr.alg === 'dir', String(hdr.alg));
  assert.equal(hdr['mesh_domain'], 'agent_memory');
  assert.equal(typeof hdr.kid, 'string');
  const get = await h2(s.port, { path: '/memory/store/note-1', headers: bearer(token) });
  assert.equal(get.status, 200, get.text());
  assert.deepEqual(get.json(), doc);
  assert.match(get.headers['content-type'] ?? '', /^application\/json/);
  assert.equal(Number(get.headers['content-length']), get.body.length);
});

test('COMPUTATION (TEE): the enclave receives a JWE sealed to its key and opens the original document', async () => {
  const token = await s.token('analyst-1', 'ANALYST', { attested: true });
  const doc = { income: 84000, debts: 12500 };
  const mark = s.upstream.received.length;
  const res = await h1(s.port, { method: 'POST', path: '/inference/enclave', headers: { ...bearer(token), ...json }, body: JSON.stringify(doc) });
  assert.equal(res.status, 200, res.text());
  const got = s.upstream.since(mark)[0]!;
  assert.equal(got.headers['content-type'], 'application/jose');
  assert.equal(got.headers['x-mesh-protected'], 'COMPUTATION');
  assert.equal(Number(got.headers['content-length']), got.body.length);
  const hdr = decodeProtectedHeader(got.body.toString('utf8'));
  assert.equal(hdr.alg, 'ECDH-ES+A256KW');
  assert.ok(!got.body.toString('utf8').includes('84000'));
  assert.deepEqual(got.opened, doc);
  assert.deepEqual(res.json(), { opened_in_enclave: ['debts', 'income'] });
});

test('COMPUTATION (MPC): the callee gets additive shares sealed per party; all parties together rebuild the values', async () => {
  const token = await s.token('analyst-1', 'ANALYST');
  const doc = { amount: 1200.5, count: 3, currency: 'EUR' };
  const mark = s.upstream.received.length;
  const res = await h2(s.port, { method: 'POST', path: '/mpc/enclave', headers: { ...bearer(token), ...json }, body: JSON.stringify(doc) });
  assert.equal(res.status, 200, res.text());
  const got = s.upstream.since(mark)[0]!;
  assert.equal(got.headers['x-mesh-protected'], 'COMPUTATION');
  assert.match(String(got.headers['content-type']), /^application\/json/);
  assert.equal(Number(got.headers['content-length']), got.body.length);
  const text = got.body.toString('utf8');
  assert.ok(!text.includes('1200.5') && !text.includes('EUR'), 'plaintext values reached the callee');
  assert.deepEqual(got.opened, doc);
});

test('FHE: the model service scores encrypted features with public keys; the caller gets the plaintext score', async () => {
  const token = await s.token('analyst-2', 'ANALYST', { attested: true });
  const mark = s.upstream.received.length;
  const res = await h1(s.port, { method: 'POST', path: '/models/model/score', headers: { ...bearer(token), ...json }, body: JSON.stringify({ features: [1, 2, 3], client: 'acme' }) });
  assert.equal(res.status, 200, res.text());
  const got = s.upstream.since(mark)[0]!;
  assert.equal(got.headers['x-mesh-protected'], 'FHE');
  const sent = JSON.parse(got.body.toString('utf8')) as { features: { $fhe?: { scheme: string; length: number } }; client: string };
  assert.equal(sent.features.$fhe?.scheme, 'ckks');
  assert.equal(sent.features.$fhe?.length, 3);
  assert.notEqual(sent.client, 'acme');
  const { score } = res.json<{ score: number }>();
  // 0.5·1 − 1·2 + 2·3 + 1 = 5.5, within CKKS precision.
  assert.ok(Math.abs(score - 5.5) < 1e-3, String(score));
});

test('DLP redact, request direction: the canary is redacted before protection', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const put = await h1(s.port, { method: 'PUT', path: '/memory/store/dlp-1', headers: { ...bearer(token), ...json }, body: JSON.stringify({ note: `token ${CANARY} here` }) });
  assert.equal(put.status, 201, put.text());
  const get = await h1(s.port, { path: '/memory/store/dlp-1', headers: bearer(token) });
  assert.deepEqual(get.json(), { note: 'token [REDACTED:CANARY] here' });
});

test('DLP redact, response direction: a plaintext answer with a canary reaches the caller redacted', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const path = s.upstream.reply('leaky-memory', { headers: { 'content-type': 'text/plain' }, body: `cached secret ${CANARY}` });
  const res = await h2(s.port, { path: `/memory${path}`, headers: bearer(token) });
  assert.equal(res.status, 200, res.text());
  assert.equal(res.text(), 'cached secret [REDACTED:CANARY]');
  assert.equal(Number(res.headers['content-length']), res.body.length);
});

test('DLP block, request direction: an SSN for the enclave is refused (403 dlp_blocked) and never sent', async () => {
  const token = await s.token('analyst-1', 'ANALYST', { attested: true });
  const mark = s.upstream.received.length;
  const res = await h1(s.port, { method: 'POST', path: '/inference/enclave', headers: { ...bearer(token), ...json }, body: JSON.stringify({ income: 1, note: 'applicant SSN 536-22-1234' }) });
  assert.equal(res.status, 403, res.text());
  assert.equal(res.headers['x-mesh-reason'], 'dlp_blocked');
  assert.equal(res.json<{ reason: string }>().reason, 'dlp_blocked');
  assert.ok(!res.text().includes('536-22-1234'));
  assert.equal(s.upstream.since(mark).length, 0);
});

test('DLP block, response direction: a card number in the enclave\'s answer never reaches the caller', async () => {
  const token = await s.token('analyst-1', 'ANALYST', { attested: true });
  const path = s.upstream.reply('leaky-enclave', { headers: json, body: JSON.stringify({ card: '4111 1111 1111 1111' }) });
  const res = await h2(s.port, { path: `/inference${path}`, headers: bearer(token) });
  assert.equal(res.status, 403, res.text());
  assert.equal(res.headers['x-mesh-reason'], 'dlp_blocked');
  assert.ok(!res.text().includes('4111'));
});

test('chunked request without content-length: the callee gets the whole body protected, with its exact length', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const parts = ['{"note":"', 'a'.repeat(2000), '","more":', '[1,2,3]}'];
  const put = await h1(s.port, { method: 'PUT', path: '/memory/store/chunked', headers: { ...bearer(token), ...json }, chunks: parts });
  assert.equal(put.status, 201, put.text());
  const got = s.upstream.received.at(-1)!;
  assert.equal(got.headers['transfer-encoding'], undefined, JSON.stringify(got.rawHeaders));
  assert.equal(Number(got.headers['content-length']), got.body.length);
  assert.equal(got.headers['content-type'], 'application/jose');
  const get = await h2(s.port, { path: '/memory/store/chunked', headers: bearer(token) });
  assert.equal(get.text(), parts.join(''));
});

test('a body over the domain limit is refused with 413 payload_too_large and never sent, with or without content-length', async () => {
  const token = await s.token('planner-1', 'ORCHESTRATOR');
  const mark = s.upstream.received.length;
  const big = JSON.stringify({ blob: 'b'.repeat(4096) });
  for (const res of [
    await h1(s.port, { method: 'POST', path: '/small/echo', headers: { ...bearer(token), ...json }, body: big }),
    await h1(s.port, { method: 'POST', path: '/small/echo', headers: { ...bearer(token), ...json }, chunks: [big.slice(0, 2000), big.slice(2000)] }),
    await h2(s.port, { method: 'POST', path: '/small/echo', headers: { ...bearer(token), ...json }, body: big }),
  ]) {
    assert.equal(res.status, 413, res.text());
    assert.equal(res.headers['x-mesh-reason'], 'payload_too_large');
  }
  assert.equal(s.upstream.since(mark).length, 0);
  const ok = await h1(s.port, { method: 'POST', path: '/small/echo', headers: { ...bearer(token), ...json }, body: '{"fits":true}' });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json(), { fits: true });
});
