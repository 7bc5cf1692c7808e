import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { checkedHeaders } from '../support/extproc-server.js';
import { loadServices } from '../../src/envoy/protos.js';
import { checkRequestToAttributes } from '../../src/envoy/check/request.js';
import { authorizeWithLimits, currentLoad } from '../../src/server/overload.js';
import { CheckClient, denyReason, envoyCheckRequest, startTestServer } from '../support/envoy-check.js';
import { createMeshFixture, DEFAULT_DOMAINS, policyYaml } from '../support/mesh-fixture.js';
import { isAllow, startHarness } from './support.js';

async function jwksServer(body: () => string) {
  const state = { delayMs: 0, down: false, hits: 0 };
  const server: Server = createServer((_req, res) => {
    state.hits++;
    setTimeout(() => {
      if (state.down) {
        res.statusCode = 503;
        res.end('down');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(body());
    }, state.delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  return { state, url, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

async function readyz(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  await res.text();
  return res.status;
}

describe('overload and faults (real gRPC server)', () => {
  it('beyond max_concurrent_checks, calls are denied overloaded at once while a slow JWKS holds the others', async () => {
    const fx = await createMeshFixture(policyYaml(DEFAULT_DOMAINS, '  server:\n    max_concurrent_checks: 4\n'));
    const jwksText = await readFile(fx.policy.identity.jwksFile!, 'utf8');
    const jwks = await jwksServer(() => jwksText);
    jwks.state.delayMs = 1500;
    await writeFile(fx.policyFile, (await readFile(fx.policyFile, 'utf8')).replace('jwks_file: keys/issuer.jwks.json', `jwks_uri: ${jwks.url}`));
    const s = await startTestServer(fx.policyFile);
    const client = new CheckClient(s.address);
    try {
      const tokens = await Promise.all(Array.from({ length: 24 }, (_, i) => fx.token({ agent: `agent-${i}`, role: 'RETRIEVER' })));
      const results = await Promise.all(tokens.map((token) => client.check(envoyCheckRequest({ token }))));
      const reasons = results.map((r) => (isAllow(r) ? 'ok' : denyReason(r)));
      const overloaded = reasons.filter((r) => r === 'overloaded').length;
      assert.ok(overloaded >= 20, `expected shedding, got ${JSON.stringify(reasons)}`);
      assert.equal(reasons.filter((r) => r === 'ok').length + overloaded, 24, JSON.stringify(reasons));
      assert.equal(currentLoad(s.runtime).checks, 0);

      // JWKS outage: the last good keys keep serving; an unknown kid fails closed.
      jwks.state.delayMs = 0;
      jwks.state.down = true;
      assert.ok(isAllow(await client.check(envoyCheckRequest({ token: await fx.token({ agent: 'after-outage', role: 'RETRIEVER' }) }))));
      const { SignJWT, generateKeyPair } = await import('jose');
      const rogue = await generateKeyPair('ES256');
      const now = Math.floor(Date.now() / 1000);
      const forged = await new SignJWT({ sub: 'x', role: 'RETRIEVER', iss: fx.policy.identity.issuer, aud: 'agent-mesh', iat: now, exp: now + 60 })
        .setProtectedHeader({ alg: 'ES256', kid: 'rotated-key-nobody-has' })
        .sign(rogue.privateKey);
      assert.equal(denyReason(await client.check(envoyCheckRequest({ token: forged }))), 'invalid_credential');
      // Server entirely gone (connection refused) is the same.
      await jwks.close();
      assert.equal(denyReason(await client.check(envoyCheckRequest({ token: forged }))), 'invalid_credential');
      assert.ok(isAllow(await client.check(envoyCheckRequest({ token: await fx.token({ agent: 'still-ok', role: 'RETRIEVER' }) }))));
    } finally {
      client.close();
      await s.close();
      await jwks.close().catch(() => undefined);
      await fx.cleanup();
    }
  });

  it('oversized request headers deny payload_too_large; a call past its deadline is not evaluated or audited', async () => {
    const h = await startHarness(policyYaml(DEFAULT_DOMAINS, '  server:\n    max_request_header_bytes: 8192\n'));
    try {
      const token = await h.fx.token({ agent: 'big', role: 'RETRIEVER' });
      assert.ok(isAllow(await h.client.check(envoyCheckRequest({ token }))));
      const res = await h.client.check(envoyCheckRequest({ token, headers: { 'x-padding': 'p'.repeat(9000) } }));
      assert.equal(denyReason(res), 'payload_too_large');
      const many: Record<string, string> = {};
      for (let i = 0; i < 400; i++) many[`x-h-${i}`] = 'v'.repeat(20);
      assert.equal(denyReason(await h.client.check(envoyCheckRequest({ token, headers: many }))), 'payload_too_large');

      const attrs = checkRequestToAttributes(envoyCheckRequest({ token }));
      const late = await authorizeWithLimits(h.server.runtime, attrs, Date.now() - 1);
      assert.equal(late.kind, 'deny');
      assert.equal(late.reason, 'overloaded');
      const onTime = await authorizeWithLimits(h.server.runtime, attrs, Date.now() + 5000);
      assert.equal(onTime.kind, 'allow');
      const audit = await readFile(h.fx.policy.audit.file, 'utf8');
      assert.ok(!audit.includes(late.decisionId), 'a shed call must not be evaluated or recorded');
      assert.ok(audit.includes(onTime.decisionId));
    } finally {
      await h.close();
    }
  });

  // /dev/full fails every write with ENOSPC as a full disk does (tests run as root: permission bits
  // would not stop the writes).
  it('audit disk full: FULL_MESH allows become audit_unavailable, readiness goes down, and both recover', { skip: !existsSync('/dev/full') }, async () => {
    const fx = await createMeshFixture();
    await mkdir(path.dirname(fx.policy.audit.file), { recursive: true });
    await symlink('/dev/full', fx.policy.audit.file);
    const s = await startTestServer(fx.policyFile);
    const client = new CheckClient(s.address);
    try {
      assert.equal(await readyz(s.adminPort), 200);
      const token = await fx.token({ agent: 'full', role: 'ORCHESTRATOR' });
      const res = await client.check(envoyCheckRequest({ token }));
      assert.equal(denyReason(res), 'audit_unavailable');
      assert.equal(await readyz(s.adminPort), 503);
      // OUTPUT_ONLY domain: its allows are not recorded, so they are not blocked by the audit log.
      assert.ok(isAllow(await client.check(envoyCheckRequest({ token, host: 'api.coord.svc', path: '/x' }))));
      // The disk recovers: the next write reopens a regular file.
      await rm(fx.policy.audit.file);
      let ok = false;
      for (let i = 0; i < 20 && !ok; i++) ok = isAllow(await client.check(envoyCheckRequest({ token })));
      assert.ok(ok, 'no recovery after the disk came back');
      assert.equal(await readyz(s.adminPort), 200);
    } finally {
      client.close();
      await s.close();
      await fx.cleanup();
    }
  });

  it('beyond max_concurrent_streams, an ext_proc stream is answered 503 overloaded, never passed through', async () => {
    const h = await startHarness(policyYaml(DEFAULT_DOMAINS, '  server:\n    max_concurrent_streams: 1\n'));
    const Proc = loadServices().ExternalProcessor;
    const client = new Proc(h.server.address, grpc.credentials.createInsecure()) as unknown as { Process(): grpc.ClientDuplexStream<object, Record<string, unknown>>; close(): void };
    const mesh = checkedHeaders('agent_memory', { method: '', path: '/v1/memory/x' }, { key: h.server.runtime.pseudonyms.bindingKey() });
    const headers = { request_headers: { headers: { headers: [[':path', '/v1/memory/x'], ...mesh].map(([key, v]) => ({ key, raw_value: Buffer.from(v!) })) }, end_of_stream: false } };
    const firstAnswer = (call: grpc.ClientDuplexStream<object, Record<string, unknown>>) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        call.once('data', resolve);
        call.once('error', reject);
      });
    try {
      const first = client.Process();
      first.on('error', () => undefined);
      first.write(headers);
      const a1 = await firstAnswer(first);
      assert.ok(a1.request_headers, JSON.stringify(Object.keys(a1)));
      const second = client.Process();
      second.on('error', () => undefined);
      second.write(headers);
      const a2 = (await firstAnswer(second)) as { immediate_response?: { status: { code: string | number }; headers: { set_headers: Array<{ header: { key: string; raw_value?: Buffer; value?: string } }> } } };
      assert.ok(a2.immediate_response, 'second stream must be refused');
      const reason = a2.immediate_response.headers.set_headers.find((x) => x.header.key === 'x-mesh-reason');
      assert.equal(Buffer.from(reason?.header.raw_value ?? '').toString() || reason?.header.value, 'overloaded');
      second.end();
      first.end();
      await new Promise<void>((r) => first.on('status', () => r()));
      for (let i = 0; i < 50 && currentLoad(h.server.runtime).streams > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(currentLoad(h.server.runtime).streams, 0, 'finished streams must release their slot');
      const third = client.Process();
      third.on('error', () => undefined);
      third.write(headers);
      assert.ok((await firstAnswer(third)).request_headers);
      third.end();
    } finally {
      client.close();
      await h.close();
    }
  });

  it('a revocation file that cannot be read refuses to start (never serve without the list asked for)', async () => {
    const fx = await createMeshFixture(policyYaml(DEFAULT_DOMAINS, '  revocation:\n    file: missing-revocations.yaml\n'));
    try {
      await assert.rejects(startTestServer(fx.policyFile), /revocation file not found/);
    } finally {
      await fx.cleanup();
    }
  });
});
