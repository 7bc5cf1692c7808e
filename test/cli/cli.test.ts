import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../support/cli.js';
import { useCheckServer } from '../support/envoy-check.js';
import { createMeshFixture, policyYaml } from '../support/mesh-fixture.js';

const h = useCheckServer();

describe('mesh-pep CLI', () => {
  it('lists commands and has --help for each', async () => {
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    for (const name of ['serve', 'validate', 'token', 'keys init', 'keys rotate', 'check', 'protect', 'open', 'audit verify']) {
      assert.ok(top.stdout.includes(name), `${name} listed`);
      const h = await runCli([...name.split(' '), '--help']);
      assert.equal(h.code, 0, name);
      assert.match(h.stdout, /^Usage: mesh-pep /);
    }
    const bad = await runCli(['frobnicate']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command/);
  });

  it('serve refuses a bad worker count (flag or MESH_PEP_WORKERS) with exit 2, naming where it came from', async () => {
    const flag = await runCli(['serve', '--config', h.fx.policyFile, '--workers', '0']);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /--workers must be a whole number from 1 to 256 or "auto", not "0"/);
    const env = await runCli(['serve', '--config', h.fx.policyFile], { env: { ...process.env, MESH_PEP_WORKERS: 'lots' } });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /MESH_PEP_WORKERS must be a whole number/);
  });

  it('validate: exit 0 for a good file, 1 with file:line:col for a bad one', async () => {
    const ok = await runCli(['validate', '--config', h.fx.policyFile]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok \(3 domains/);
    const bad = path.join(h.fx.dir, 'bad.yaml');
    await writeFile(bad, 'security_mesh:\n  domains:\n    - name: x\n      tier: NOPE\n      allowed_roles: [A]\n      extra: 1\n');
    const res = await runCli(['validate', '--config', bad]);
    assert.equal(res.code, 1);
    const lines = res.stderr.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.equal(lines[0], `${bad}:4:13: security_mesh.domains[0].tier: "NOPE" is not one of RETRIEVAL | COMPUTATION | FHE`);
    assert.ok(lines[1]!.startsWith(`${bad}:6:7: security_mesh.domains[0].extra: unknown key "extra" (expected one of: name, tier, `), lines[1]);
    await writeFile(bad, '\u0000\u0001 not yaml: [');
    assert.equal((await runCli(['validate', '--config', bad])).code, 1);
    const missing = await runCli(['validate', '--config', path.join(h.fx.dir, 'missing.yaml')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /missing\.yaml:1:1: cannot read file/);
  });

  it('token + check: allow and deny printed readably, --json and --explain', async () => {
    const tok = await runCli(['token', '--config', h.fx.policyFile, '--agent', 'retriever-7', '--role', 'RETRIEVER', '--ttl', '5m']);
    assert.equal(tok.code, 0, tok.stderr);
    const token = tok.stdout.trim();
    assert.match(token, /^ey[\w-]+\.[\w-]+\.[\w-]+$/);
    const allow = await runCli(['check', '--server', h.server.address, '--domain', 'agent_memory', '--token', token, '--header', 'x-forwarded-for=10.0.0.1']);
    assert.equal(allow.code, 0, allow.stderr);
    assert.match(allow.stdout, /^ALLOW  domain=agent_memory tier=RETRIEVAL role=RETRIEVER/);
    assert.match(allow.stdout, /remove  authorization, x-forwarded-for/);
    const deny = await runCli(['check', '--server', h.server.address, '--domain', 'coordination', '--token', token]);
    assert.equal(deny.code, 3);
    assert.match(deny.stdout, /^DENY   http=403 grpc=7 reason=role_not_allowed/);
    const json = await runCli(['check', '--server', h.server.address, '--domain', 'agent_memory', '--token', token, '--json']);
    assert.equal(JSON.parse(json.stdout).status.code, 0);
    const explain = await runCli(['check', '--server', h.server.address, '--domain', 'coordination', '--token', token, '--explain']);
    assert.equal(explain.code, 3);
    assert.match(explain.stdout, /^DENY  reason=role_not_allowed/);
    assert.match(explain.stdout, /authorize\s+fail\s+role "RETRIEVER" not in \[ORCHESTRATOR, EXECUTOR\]/);
    assert.ok(!explain.stdout.includes(token));
    const stdinToken = await runCli(['check', '--server', h.server.address, '--domain', 'agent_memory', '--token', '-'], { input: token + '\n' });
    assert.equal(stdinToken.code, 0);
  });

  it('protect then open: the RETRIEVAL round trip from the command line', async () => {
    const token = (await runCli(['token', '--config', h.fx.policyFile, '--agent', 'r', '--role', 'RETRIEVER'])).stdout.trim();
    const plain = '{"note":"the launch code is 0000"}';
    const p = await runCli(['protect', '--server', h.server.address, '--domain', 'agent_memory', '--token', token], { input: plain });
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /^[\w-]+\.[\w-]*\.[\w-]+\.[\w-]+\.[\w-]+$/, 'a compact JWE');
    assert.ok(!p.stdout.includes('launch'));
    assert.match(p.stderr, /x-mesh-protected: RETRIEVAL/);
    const o = await runCli(['open', '--config', h.fx.policyFile, '--domain', 'agent_memory'], { input: p.stdout });
    assert.equal(o.code, 0, o.stderr);
    assert.equal(o.stdout, plain);
    const tampered = p.stdout.slice(0, -4) + (p.stdout.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const bad = await runCli(['open', '--config', h.fx.policyFile, '--domain', 'agent_memory'], { input: tampered });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /payload_rejected/);
    const denied = await runCli(['protect', '--server', h.server.address, '--domain', 'coordination', '--token', token], { input: plain });
    assert.equal(denied.code, 3);
    assert.match(denied.stderr, /DENY by Check: http=403 reason=role_not_allowed/);
    assert.equal(denied.stdout, '');
  });

  it('clear errors for caller mistakes and an unreachable server', async () => {
    const noAgent = await runCli(['token', '--config', h.fx.policyFile, '--role', 'X']);
    assert.equal(noAgent.code, 2);
    assert.match(noAgent.stderr, /--agent is required/);
    const badTtl = await runCli(['token', '--config', h.fx.policyFile, '--agent', 'a', '--role', 'X', '--ttl', 'soon']);
    assert.equal(badTtl.code, 2);
    const down = await runCli(['check', '--server', '127.0.0.1:1', '--domain', 'x', '--token', 't']);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /Check failed/);
  });

  it('keys init creates missing keys once and never overwrites', async () => {
    const fresh = await createMeshFixture(policyYaml());
    try {
      const again = await runCli(['keys', 'init', '--config', fresh.policyFile]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /all key files already exist/);
    } finally {
      await fresh.cleanup();
    }
    const dir = path.join(h.fx.dir, 'other');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    const file = path.join(dir, 'p.yaml');
    await writeFile(file, policyYaml());
    const first = await runCli(['keys', 'init', '--config', file]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /created .*issuer\.jwks\.json/);
    assert.match(first.stdout, /created .*agent_memory\.jwks\.json/);
    assert.match(first.stdout, /created .*pseudonym\.key/);
  });
});
