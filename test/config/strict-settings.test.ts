import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parsePolicy } from '../../src/config/load.js';
import { formatProblem } from '../../src/errors.js';
import { RemoteJwksSource } from '../../src/identity/jwks-remote.js';
import { readRevocationFile } from '../../src/policy/guards/revocation-file.js';
import { runCli } from '../support/cli.js';

/** Settings that used to weaken a check quietly are errors with a position; YAML errors say where. */
function errors(yaml: string): string[] {
  return parsePolicy(yaml, 'p.yaml').problems.filter((p) => p.severity === 'error').map(formatProblem);
}

const DOMAINS = '  domains:\n    - {name: a, tier: RETRIEVAL, allowed_roles: [X]}\n';

describe('policy settings that would switch a check off are errors', () => {
  it('a YAML syntax error is reported at its own line and column, by parsePolicy and by mesh-pep validate', async () => {
    const yaml = 'security_mesh:\n  domains:\n    - name: a: b\n';
    assert.deepEqual(errors(yaml), ['p.yaml:3:13: not valid YAML: Nested mappings are not allowed in compact mappings']);
    assert.deepEqual(errors('security_mesh:\n  domains:\n    - name: a\n     tier: FHE\n'), ['p.yaml:4:1: not valid YAML: Sequence item without - indicator']);
    const dir = await mkdtemp(path.join(tmpdir(), 'mesh-pep-yaml-'));
    try {
      const file = path.join(dir, 'bad.yaml');
      await writeFile(file, yaml);
      const r = await runCli(['validate', '--config', file]);
      assert.equal(r.code, 1);
      assert.match(r.stdout + r.stderr, /bad\.yaml:3:13: not valid YAML/);
      // The revocation file is YAML too.
      const rev = path.join(dir, 'revoked.yaml');
      await writeFile(rev, 'agents:\n  - a\n  - b: c: d\n');
      const err = await readRevocationFile(rev).then(() => assert.fail('accepted'), (e: unknown) => e as { problems: Array<{ line: number; col: number }> });
      assert.deepEqual([err.problems[0]!.line, err.problems[0]!.col], [3, 8]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('audiences: [] is an error (it disabled the audience check)', () => {
    assert.deepEqual(errors(`security_mesh:\n  identity:\n    audiences: []\n${DOMAINS}`), [
      'p.yaml:3:16: security_mesh.identity.audiences: must name at least one audience (an empty list would switch the audience check off)',
    ]);
  });

  it('a plain http jwks_uri is an error except on loopback; the source refuses it too', () => {
    assert.deepEqual(errors(`security_mesh:\n  identity:\n    jwks_uri: "http://issuer.example/jwks.json"\n${DOMAINS}`), [
      'p.yaml:3:15: security_mesh.identity.jwks_uri: plain http lets anyone on the path swap the issuer keys; use https (http is accepted only for loopback hosts)',
    ]);
    for (const ok of ['https://issuer.example/jwks.json', 'http://127.0.0.1:8080/jwks.json', 'http://localhost/jwks.json', 'http://[::1]:9/jwks.json']) {
      assert.deepEqual(errors(`security_mesh:\n  identity:\n    jwks_uri: "${ok}"\n${DOMAINS}`), [], ok);
    }
    // Lookalikes of loopback are not loopback.
    for (const bad of ['http://127.0.0.1.evil.example/jwks.json', 'http://localhost.evil.example/jwks.json']) {
      assert.equal(errors(`security_mesh:\n  identity:\n    jwks_uri: "${bad}"\n${DOMAINS}`).length, 1, bad);
      assert.throws(() => new RemoteJwksSource(bad, { prefetch: false }), /must be https/);
    }
  });

  it('server.tls.allowed_clients needs client_ca_file', () => {
    assert.deepEqual(errors(`security_mesh:\n${DOMAINS}  server:\n    tls:\n      cert_file: c.pem\n      key_file: k.pem\n      allowed_clients: ["spiffe://cluster.local/ns/istio-system/sa/envoy"]\n`), [
      'p.yaml:8:7: security_mesh.server.tls.allowed_clients: needs client_ca_file (only verified client certificates carry identities)',
    ]);
    const { policy } = parsePolicy(`security_mesh:\n${DOMAINS}  server:\n    tls:\n      cert_file: c.pem\n      key_file: k.pem\n      client_ca_file: ca.pem\n      allowed_clients: [envoy.mesh.internal]\n`, 'p.yaml');
    assert.deepEqual(policy?.server?.tls?.allowedClients, ['envoy.mesh.internal']);
  });
});
