import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../support/cli.js';
import { keyPair, tempDir, writeJson } from './fixtures.js';

describe('mesh-pep mpc (CLI)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let policyFile: string;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    policyFile = join(dir, 'policy.yaml');
    await writeFile(
      policyFile,
      `security_mesh:
  keys: {dir: keys}
  domains:
    - name: cross_cloud
      tier: COMPUTATION
      allowed_roles: [ANALYST]
      computation:
        mode: mpc
        parties: [{name: east, jwks_file: parties/east.jwks.json}, {name: west, jwks_file: parties/west.jwks.json}]
        fields: ["$.n"]
    - name: tee_domain
      tier: COMPUTATION
      allowed_roles: [ANALYST]
`,
    );
    const init = await runCli(['keys', 'init', '--config', policyFile]);
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => cleanup());

  it('has help and refuses unknown operations with exit 2', async () => {
    const help = await runCli(['mpc', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: mesh-pep mpc /);
    const bad = await runCli(['mpc', 'frobnicate']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown operation/);
    const notMpc = await runCli(['mpc', 'protect', '--config', policyFile, '--domain', 'tee_domain', '-'], { input: '{"n":1}' });
    assert.equal(notMpc.code, 2);
    assert.match(notMpc.stderr, /not a COMPUTATION domain in MPC mode/);
  });

  it('protect → sum per party → combine gives the total; bad input exits 1 with the reason, never a value', async () => {
    const files: string[] = [];
    for (const [i, n] of [10.5, -2.25, 1e6].entries()) {
      const r = await runCli(['mpc', 'protect', '--config', policyFile, '--domain', 'cross_cloud', '-'], { input: JSON.stringify({ n, tag: `secret region ${i}` }) });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!r.stdout.includes(`secret region`), 'the non-shared remainder travels only inside the bundles');
      const f = join(dir, `r${i}.json`);
      await writeFile(f, r.stdout);
      files.push(f);
    }
    const sums: string[] = [];
    for (const party of ['east', 'west']) {
      const out = join(dir, `${party}.sum.json`);
      const r = await runCli(['mpc', 'sum', '--key', join(dir, 'parties', `${party}.private.jwk.json`), '--field', '/n', '--out', out, ...files]);
      assert.equal(r.code, 0, r.stderr);
      sums.push(out);
    }
    const total = await runCli(['mpc', 'combine', ...sums]);
    assert.equal(total.code, 0, total.stderr);
    assert.deepEqual(JSON.parse(total.stdout), { total: 1000008.25, terms: 3 });

    const one = await runCli(['mpc', 'combine', sums[0]!]);
    assert.equal(one.code, 1);
    assert.match(one.stderr, /payload_rejected/);

    const stranger = join(dir, 'stranger.jwk.json');
    await writeJson(stranger, (await keyPair('X25519')).privateJwk);
    const foreign = await runCli(['mpc', 'sum', '--key', stranger, files[0]!]);
    assert.equal(foreign.code, 2);
    assert.match(foreign.stderr, /none of its bundles is sealed to the given key/);

    const nan = await runCli(['mpc', 'protect', '--config', policyFile, '--domain', 'cross_cloud', '-'], { input: '{"n":"NaN-secret"}' });
    assert.equal(nan.code, 1);
    assert.match(nan.stderr, /payload_rejected/);
    assert.ok(!nan.stderr.includes('NaN-secret'));
  });
});
