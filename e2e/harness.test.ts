/**
 * The harness itself, through a real Envoy 1.40: the shipped envoy/envoy.yaml, mesh-pep as a process,
 * a plain upstream. Scenario suites build on the same pieces.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ensureEnvoy, readShipped, renderEnvoyConfig, startEnvoy, startMeshPep, validateEnvoyConfig, type MeshPepProcess, type RunningEnvoy } from '../tools/envoy/index.js';
import { loadPolicyFile } from '../src/config/load.js';
import { mintPolicyToken } from '../src/identity/dev-issuer.js';
import { writeSuitePolicy } from './support/stack.js';

let envoy: RunningEnvoy;
let pep: MeshPepProcess;
let upstream: http.Server;
let dir: string;
const seen: { url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

before(async () => {
  const bin = await ensureEnvoy();
  dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-e2e-'));
  // The bundled policy, with its key and audit paths in this test's own folder (copied as it is, its
  // `../.mesh-pep/` paths would land in a folder every run on the machine shares).
  await writeSuitePolicy(dir);
  pep = await startMeshPep({ configFile: path.join(dir, 'policy.yaml'), extraArgs: ['--init-keys'] });
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('upstream-ok');
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = { host: '127.0.0.1', port: (upstream.address() as AddressInfo).port };
  const cfg = renderEnvoyConfig(readShipped(), {
    clusters: { mesh_pep: { host: '127.0.0.1', port: pep.grpcPort }, jaeger_otlp: { host: '127.0.0.1', port: 9 }, orchestrator: up, retriever: up, analyst: up },
  });
  await validateEnvoyConfig(bin.path, cfg);
  envoy = await startEnvoy(cfg, { binary: bin.path });
});

after(async () => {
  await envoy?.stop();
  await pep?.stop();
  await new Promise((r) => upstream?.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('an allowed coordination call reaches the upstream without the credential', async () => {
  const { policy } = await loadPolicyFile(path.join(dir, 'policy.yaml'));
  const token = await mintPolicyToken(policy, { agentId: 'planner-1', role: 'ORCHESTRATOR', ttlMs: 60_000 });
  const res = await fetch(`http://127.0.0.1:${envoy.port()}/coordination/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ task: 'plan' }),
  });
  assert.equal(res.status, 200, await envoy.log());
  assert.equal(await res.text(), 'upstream-ok');
  const got = seen.at(-1)!;
  assert.equal(got.url, '/tasks');
  assert.equal(got.headers.authorization, undefined);
  assert.equal(got.headers['x-mesh-domain'], 'coordination');
  assert.equal(got.headers['x-agent-id'], 'planner-1');
});

test('no credential: Envoy answers mesh-pep\'s 401 and nothing reaches the upstream', async () => {
  const before = seen.length;
  const res = await fetch(`http://127.0.0.1:${envoy.port()}/coordination/tasks`);
  assert.equal(res.status, 401, JSON.stringify([...res.headers]) + (await res.clone().text()));
  assert.equal(res.headers.get('x-mesh-reason'), 'missing_credential');
  assert.equal((await res.json() as { reason: string }).reason, 'missing_credential');
  assert.equal(seen.length, before);
});
