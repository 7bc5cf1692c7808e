import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../../src/envoy/protos.js';
import { envoyCheckRequest, type CheckResponseView } from '../support/envoy-check.js';
import { createMeshFixture, policyYaml, DEFAULT_DOMAINS, type MeshFixture } from '../support/mesh-fixture.js';
import { startTestServer } from '../support/envoy-check.js';
import { spawn } from 'node:child_process';
import { CLI, runCli } from '../support/cli.js';
import { hasOpenssl, mintPki, type TestPki } from './certs.js';
import { exited, freePort } from './load.js';
import { isAllow } from './support.js';

function check(address: string, creds: grpc.ChannelCredentials, req: unknown): Promise<CheckResponseView> {
  const client = new (loadServices().Authorization)(address, creds, { 'grpc.ssl_target_name_override': 'localhost' });
  return new Promise<CheckResponseView>((resolve, reject) => {
    (client as unknown as { Check: Function }).Check(req, new grpc.Metadata(), { deadline: Date.now() + 3000 }, (err: Error | null, res: CheckResponseView) =>
      err ? reject(err) : resolve(res),
    );
  }).finally(() => client.close());
}

/** Which TLS versions a raw handshake to the listener can negotiate. */
function handshake(port: number, ca: Buffer, version: 'TLSv1.2' | 'TLSv1.3', client?: { cert: Buffer; key: Buffer }): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', minVersion: version, maxVersion: version, ALPNProtocols: ['h2'], ...client }, () => {
      const v = s.getProtocol() ?? 'unknown';
      s.end();
      resolve(v);
    });
    s.on('error', (e) => resolve(`error: ${e.message}`));
  });
}

const tlsPolicy = (pki: TestPki, min: '1.2' | '1.3', mtls: boolean) =>
  policyYaml(DEFAULT_DOMAINS, `  server:\n    tls:\n      cert_file: ${pki.serverCert}\n      key_file: ${pki.serverKey}\n${mtls ? `      client_ca_file: ${pki.caCert}\n` : ''}`).replace(
    'tls_min_version: "1.3"',
    `tls_min_version: "${min}"`,
  );

describe('the gRPC listener over TLS and mTLS', () => {
  let pki: TestPki;
  before(() => {
    // The certificates are minted with the openssl CLI: without it this suite fails, it never skips.
    assert.ok(hasOpenssl(), 'the openssl CLI is needed to mint the test certificates (apt-get install openssl)');
    pki = mintPki('tls');
  });
  after(() => pki?.cleanup());

  it('TLS with tls_min_version 1.3: TLS 1.3 clients served, TLS 1.2 and plaintext refused', async () => {
    const fx: MeshFixture = await createMeshFixture(tlsPolicy(pki, '1.3', false));
    const s = await startTestServer(fx.policyFile);
    try {
      const token = await fx.token({ agent: 'a1', role: 'RETRIEVER' });
      const res = await check(s.address, grpc.credentials.createSsl(pki.read(pki.caCert)), envoyCheckRequest({ token }));
      assert.ok(isAllow(res));
      await assert.rejects(check(s.address, grpc.credentials.createInsecure(), envoyCheckRequest({ token })));
      assert.equal(await handshake(s.grpcPort, pki.read(pki.caCert), 'TLSv1.3'), 'TLSv1.3');
      assert.match(await handshake(s.grpcPort, pki.read(pki.caCert), 'TLSv1.2'), /^error/);
    } finally {
      await s.close();
      await fx.cleanup();
    }
  });

  it('mTLS: a client without a certificate from the client CA is refused; tls_min_version 1.2 admits 1.2', async () => {
    const fx = await createMeshFixture(tlsPolicy(pki, '1.2', true));
    const s = await startTestServer(fx.policyFile);
    try {
      const token = await fx.token({ agent: 'a2', role: 'RETRIEVER' });
      const ca = pki.read(pki.caCert);
      const withCert = grpc.credentials.createSsl(ca, pki.read(pki.clientKey), pki.read(pki.clientCert));
      assert.ok(isAllow(await check(s.address, withCert, envoyCheckRequest({ token }))));
      await assert.rejects(check(s.address, grpc.credentials.createSsl(ca), envoyCheckRequest({ token })));
      const other = mintPki('rogue');
      try {
        const rogue = grpc.credentials.createSsl(ca, other.read(other.clientKey), other.read(other.clientCert));
        await assert.rejects(check(s.address, rogue, envoyCheckRequest({ token })));
      } finally {
        other.cleanup();
      }
      const client = { cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) };
      assert.equal(await handshake(s.grpcPort, ca, 'TLSv1.2', client), 'TLSv1.2');
    } finally {
      await s.close();
      await fx.cleanup();
    }
  });

  it('server.tls.allowed_clients: only certificates naming an allowed URI or DNS SAN may call any service', async () => {
    const own = mintPki('allow');
    const allowed = ['spiffe://cluster.local/ns/mesh/sa/envoy', 'envoy.mesh.internal'];
    const yaml = tlsPolicy(own, '1.3', true).replace(`client_ca_file: ${own.caCert}\n`, `client_ca_file: ${own.caCert}\n      allowed_clients: [${allowed.map((a) => JSON.stringify(a)).join(', ')}]\n`);
    assert.match(yaml, /allowed_clients/);
    const fx = await createMeshFixture(yaml);
    const s = await startTestServer(fx.policyFile);
    try {
      const token = await fx.token({ agent: 'a4', role: 'RETRIEVER' });
      const ca = own.read(own.caCert);
      const creds = (c: { cert: Buffer; key: Buffer }) => grpc.credentials.createSsl(ca, c.key, c.cert);
      const envoy = { cert: own.read(own.clientCert), key: own.read(own.clientKey) };
      const byDns = own.client('envoy-dns', 'DNS:ENVOY.mesh.internal');
      // Same CA, so the handshake succeeds: only the identity tells the mesh's Envoys from any workload.
      const workload = own.client('workload', 'URI:spiffe://cluster.local/ns/agents/sa/retriever');
      const lookalike = own.client('lookalike', 'URI:spiffe://cluster.local/ns/mesh/sa/envoy-2,DNS:envoy.mesh.internal.evil');
      assert.ok(isAllow(await check(s.address, creds(envoy), envoyCheckRequest({ token }))));
      assert.ok(isAllow(await check(s.address, creds(byDns), envoyCheckRequest({ token }))));
      for (const [name, c] of Object.entries({ workload, lookalike })) {
        await assert.rejects(check(s.address, creds(c), envoyCheckRequest({ token })), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED, name);
        // ext_proc as well: a refused client never gets a body protected or unprotected.
        const proc = new (loadServices().ExternalProcessor)(s.address, creds(c), { 'grpc.ssl_target_name_override': 'localhost' });
        const call = (proc as unknown as { Process(): grpc.ClientDuplexStream<object, unknown> }).Process();
        const outcome = await new Promise<{ code: number; data: boolean }>((resolve) => {
          let data = false;
          call.on('data', () => (data = true));
          call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, data }));
          call.on('end', () => resolve({ code: 0, data }));
          call.write({ request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/memory/x') }] }, end_of_stream: true } });
        });
        proc.close();
        assert.deepEqual(outcome, { code: grpc.status.PERMISSION_DENIED, data: false }, name);
      }
    } finally {
      await s.close();
      await fx.cleanup();
      own.cleanup();
    }
  });

  it('mesh-pep serve --tls-cert/--tls-key/--tls-client-ca serves mTLS; half a flag pair is refused', async () => {
    const fx = await createMeshFixture();
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'serve', '--config', fx.policyFile, '--grpc-address', `127.0.0.1:${port}`, '--admin-address', '127.0.0.1:0', '--no-init-keys',
      '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-client-ca', pki.caCert], { env: { ...process.env, LOG_LEVEL: 'silent' }, stdio: 'ignore' });
    try {
      const token = await fx.token({ agent: 'cli-tls', role: 'RETRIEVER' });
      const ca = pki.read(pki.caCert);
      const withCert = () => grpc.credentials.createSsl(ca, pki.read(pki.clientKey), pki.read(pki.clientCert));
      let res: CheckResponseView | undefined;
      for (let i = 0; i < 100 && !res; i++) {
        res = await check(`127.0.0.1:${port}`, withCert(), envoyCheckRequest({ token })).catch(() => undefined);
        if (!res) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(res && isAllow(res));
      await assert.rejects(check(`127.0.0.1:${port}`, grpc.credentials.createSsl(ca), envoyCheckRequest({ token })));
      const half = await runCli(['serve', '--config', fx.policyFile, '--tls-cert', pki.serverCert]);
      assert.equal(half.code, 2);
      assert.match(half.stderr, /--tls-cert and --tls-key go together/);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
      await fx.cleanup();
    }
  });

  it('rotated certificate files are picked up without a restart', async () => {
    const fx = await createMeshFixture(tlsPolicy(pki, '1.3', false));
    const s = await startTestServer(fx.policyFile);
    const next = mintPki('rotated');
    try {
      const token = await fx.token({ agent: 'a3', role: 'RETRIEVER' });
      const nextCa = grpc.credentials.createSsl(next.read(next.caCert));
      await assert.rejects(check(s.address, nextCa, envoyCheckRequest({ token })));
      // Key first would briefly mismatch the certificate: that reload fails and the old pair keeps serving.
      copyFileSync(next.serverKey, pki.serverKey);
      copyFileSync(next.serverCert, pki.serverCert);
      let ok = false;
      for (let i = 0; i < 40 && !ok; i++) {
        await new Promise((r) => setTimeout(r, 250));
        ok = await check(s.address, grpc.credentials.createSsl(next.read(next.caCert)), envoyCheckRequest({ token })).then(isAllow, () => false);
      }
      assert.ok(ok, 'the listener never presented the rotated certificate');
    } finally {
      await s.close();
      await fx.cleanup();
      next.cleanup();
    }
  });
});
