import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compactDecrypt, decodeProtectedHeader, importJWK } from 'jose';
import { REASONS } from '../../src/policy/reasons.js';
import { openPartyBundle, parseEnvelope, reconstruct } from '../../src/protect/computation/index.js';
import { sealForDomain } from '../../src/protect/jwe.js';
import { loadKeyring } from '../../src/protect/keyring.js';
import { EnvoyPeer, header, type HttpRequest } from '../support/envoy-peer.js';
import { boundMetadata, startTestServer, type TestServer, checkedHeaders } from '../support/extproc-server.js';
import { keyPair, tempDir, TRUSTED, UNTRUSTED, writeJson } from './fixtures.js';

/**
 * COMPUTATION over the real ext_proc wire: the real server on 127.0.0.1, Envoy's side played by the
 * test peer, dev keys minted at start. The callee records what it received.
 */
function policy(untrustedRecipients: string): string {
  return `
security_mesh:
  identity:
    issuer: "https://issuer.test"
    audiences: ["agent-mesh"]
    jwks_file: keys/issuer.jwks.json
  attestation:
    trusted_measurements: ["${TRUSTED}"]
  keys:
    dir: keys
  audit:
    file: audit/audit.jsonl
  domains:
    - name: pii_inference
      tier: COMPUTATION
      allowed_roles: [EXECUTOR]
      metadata_masking: true
    - name: pii_untrusted
      tier: COMPUTATION
      allowed_roles: [EXECUTOR]
      computation: {mode: tee, recipients_file: ${JSON.stringify(untrustedRecipients)}}
    - name: cross_cloud
      tier: COMPUTATION
      allowed_roles: [ANALYST]
      computation:
        mode: mpc
        parties:
          - {name: aws, jwks_file: parties/aws.jwks.json}
          - {name: gcp, jwks_file: parties/gcp.jwks.json}
        fields: ["$.revenue"]
`;
}

function post(domain: string, role: string, body: string, contentType = 'application/json'): HttpRequest {
  const b = Buffer.from(body);
  return {
    headers: [
      [':method', 'POST'],
      [':path', '/v1/infer'],
      [':authority', 'compute.agents.svc'],
      [':scheme', 'http'],
      ['content-type', contentType],
      ['content-length', String(b.length)],
      ...checkedHeaders(domain, { method: 'POST', path: '/v1/infer', authority: 'compute.agents.svc' }, { role }),
    ],
    body: b,
  };
}

describe('COMPUTATION over real ext_proc gRPC', () => {
  let t: TestServer;
  let cleanupExtra: () => Promise<void>;
  before(async () => {
    const extra = await tempDir();
    cleanupExtra = extra.cleanup;
    const untrusted = join(extra.dir, 'untrusted.jwks.json');
    await writeJson(untrusted, { keys: [{ ...(await keyPair()).publicJwk, 'x-attestation': UNTRUSTED }] });
    t = await startTestServer(policy(untrusted));
  });
  after(async () => {
    await t?.close();
    await cleanupExtra?.();
  });

  const peer = (domain: string, role: string) =>
    new EnvoyPeer({ address: t.address, mode: { requestBody: 'BUFFERED', responseBody: 'BUFFERED' }, allowEnvoy: true, authzMetadata: boundMetadata({ domain, role, decision_id: `dec-${domain}` }) });

  it('TEE: the enclave receives a JWE only its key opens; its answer sealed to the domain key reaches the caller in plaintext', async () => {
    const p = peer('pii_inference', 'EXECUTOR');
    const secret = '{"patient":"Jane Roe","ssn":"123-45-6789"}';
    const enclaveKey = JSON.parse(await readFile(join(t.dir, 'keys', 'pii_inference.enclave.private.jwk.json'), 'utf8')) as object;
    const ring = await loadKeyring(t.keyringOf('pii_inference'));
    try {
      const r = await p.exchange(post('pii_inference', 'EXECUTOR', secret), async (req) => {
        // The enclave: open the request, answer sealed to the domain key.
        const { plaintext } = await compactDecrypt(req.body.toString(), await importJWK(enclaveKey, 'ECDH-ES+A256KW'));
        assert.equal(Buffer.from(plaintext).toString(), secret);
        const answer = await sealForDomain(Buffer.from('{"triage":"routine"}'), ring, { domain: 'pii_inference', contentType: 'application/json' });
        return { status: 200, headers: [['content-type', 'application/jose'], ['content-length', String(answer.length)]], body: Buffer.from(answer) };
      });
      assert.equal(r.kind, 'upstream');
      const sent = r.upstreamRequest!;
      assert.ok(!sent.body.includes(Buffer.from('Jane Roe')), 'no plaintext upstream');
      assert.equal(header(sent.headers, 'content-type'), 'application/jose');
      assert.equal(header(sent.headers, 'x-mesh-protected'), 'COMPUTATION');
      assert.equal(header(sent.headers, 'content-length'), String(sent.body.length));
      const h = decodeProtectedHeader(sent.body.toString()) as Record<string, unknown>;
      assert.equal(h['x-attestation'], TRUSTED);
      assert.equal(h.mesh_domain, 'pii_inference');
      assert.equal(r.response.status, 200);
      assert.equal(r.response.body.toString(), '{"triage":"routine"}');
      assert.equal(header(r.response.headers, 'content-type'), 'application/json');
    } finally {
      p.close();
    }
  });

  it('TEE: no trusted recipient → immediate 403 attestation_failed, nothing forwarded', async () => {
    const p = peer('pii_untrusted', 'EXECUTOR');
    let reached = false;
    try {
      const r = await p.exchange(post('pii_untrusted', 'EXECUTOR', '{"patient":"Jane Roe"}'), () => {
        reached = true;
        return { status: 200, headers: [] };
      });
      assert.equal(r.kind, 'local');
      assert.equal(reached, false);
      assert.equal(r.response.status, REASONS.attestation_failed.payloadHttp);
      assert.equal(header(r.response.headers, 'x-mesh-reason'), 'attestation_failed');
      assert.ok(!r.response.body.includes(Buffer.from('Jane Roe')));
    } finally {
      p.close();
    }
  });

  it('MPC: the callee gets one sealed bundle per party; the parties together reconstruct', async () => {
    const p = peer('cross_cloud', 'ANALYST');
    const doc = { region: 'eu-west', revenue: 1200.5 };
    try {
      const r = await p.exchange(post('cross_cloud', 'ANALYST', JSON.stringify(doc)), () => ({ status: 204, headers: [] }));
      assert.equal(r.kind, 'upstream');
      const sent = r.upstreamRequest!;
      assert.ok(!sent.body.includes(Buffer.from('"eu-west"')) && !sent.body.includes(Buffer.from('1200.5')));
      assert.equal(header(sent.headers, 'x-mesh-protected'), 'COMPUTATION');
      const env = parseEnvelope(sent.body);
      const bundles = await Promise.all(
        env.parties.map(async (party) => openPartyBundle(party, JSON.parse(await readFile(join(t.dir, 'parties', `${party.name}.private.jwk.json`), 'utf8')) as object)),
      );
      assert.deepEqual(reconstruct(bundles).document, doc);
    } finally {
      p.close();
    }
  });

  it('MPC: a non-numeric value at a shared path → immediate payload_rejected, nothing forwarded', async () => {
    const p = peer('cross_cloud', 'ANALYST');
    let reached = false;
    try {
      const r = await p.exchange(post('cross_cloud', 'ANALYST', '{"region":"eu-west","revenue":"NaN"}'), () => {
        reached = true;
        return { status: 204, headers: [] };
      });
      assert.equal(r.kind, 'local');
      assert.equal(reached, false);
      assert.equal(r.response.status, REASONS.payload_rejected.payloadHttp);
      assert.equal(header(r.response.headers, 'x-mesh-reason'), 'payload_rejected');
      assert.ok(!r.response.body.includes(Buffer.from('eu-west')));
    } finally {
      p.close();
    }
  });
});
