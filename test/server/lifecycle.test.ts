import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI } from '../support/cli.js';
import { CheckClient, envoyCheckRequest } from '../support/envoy-check.js';
import { createMeshFixture, type MeshFixture } from '../support/mesh-fixture.js';

let fx: MeshFixture;
before(async () => {
  fx = await createMeshFixture();
});
after(() => fx.cleanup());

async function waitFor(pred: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await pred().catch(() => false)) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('serve process', () => {
  it('SIGHUP reloads; SIGTERM drains (readiness 503, in-flight finish) and exits 0', async () => {
    const grpcPort = 20000 + Math.floor(Math.random() * 20000);
    const adminPort = grpcPort + 1;
    const child = spawn(process.execPath, [CLI, 'serve', '--config', fx.policyFile, '--grpc-address', `127.0.0.1:${grpcPort}`, '--admin-address', `127.0.0.1:${adminPort}`, '--drain-delay', '1s'], {
      env: { ...process.env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let logs = '';
    child.stdout.on('data', (d) => (logs += d));
    child.stderr.on('data', (d) => (logs += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status === 200, 'ready');
      const client = new CheckClient(`127.0.0.1:${grpcPort}`);
      const token = await fx.token({ agent: 'e', role: 'EXECUTOR' });
      assert.equal((await client.check(envoyCheckRequest({ domain: 'agent_memory', token }))).status.code, 7);
      const text = await readFile(fx.policyFile, 'utf8');
      await writeFile(fx.policyFile, text.replace('allowed_roles: [RETRIEVER, ORCHESTRATOR]', 'allowed_roles: [EXECUTOR]'));
      child.kill('SIGHUP');
      await waitFor(async () => (await client.check(envoyCheckRequest({ domain: 'agent_memory', token }))).status.code === 0, 'reload on SIGHUP');
      // After SIGTERM readiness drops at once while calls keep being answered during the drain delay.
      const inflight = Array.from({ length: 50 }, () => client.check(envoyCheckRequest({ domain: 'agent_memory', token })));
      child.kill('SIGTERM');
      await waitFor(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status === 503, 'readiness 503');
      const during = await client.check(envoyCheckRequest({ domain: 'agent_memory', token }));
      assert.equal(during.status.code, 0, 'answered while draining');
      for (const r of await Promise.all(inflight)) assert.equal(r.status.code, 0);
      client.close();
      assert.equal(await exited, 0, logs);
      assert.ok(logs.includes('"msg":"draining"'));
      assert.ok(!logs.includes(token.split('.')[2]!), 'no credential in the logs');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses to start on an invalid policy with file:line:col', async () => {
    const bad = `${fx.dir}/bad.yaml`;
    await writeFile(bad, 'security_mesh:\n  domains: []\n');
    const child = spawn(process.execPath, [CLI, 'serve', '--config', bad, '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    assert.match(err, /bad\.yaml:2:\d+: security_mesh\.domains: must not be empty/);
  });
});
