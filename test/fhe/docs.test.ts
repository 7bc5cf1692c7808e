import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository root, from the compiled test at dist/test/fhe/. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');

describe('FHE docs: the README walkthrough and docs/fhe.md', () => {
  it('the walkthrough runs as written: the owner decrypts the analyst score, equal to plaintext within 1e-6', async () => {
    const md = await readFile(join(ROOT, 'README.md'), 'utf8');
    const section = /<!-- walkthrough:fhe:start -->([\s\S]*?)<!-- walkthrough:fhe:end -->/.exec(md)?.[1];
    assert.ok(section, 'walkthrough markers present');
    const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
    assert.equal(blocks.length, 1);
    const script = `set -euo pipefail\n${blocks.join('\n').replaceAll('npx mesh-pep', `node ${JSON.stringify(CLI)}`)}`;
    const tmp = await mkdtemp(join(tmpdir(), 'mesh-pep-fhe-docs-'));
    try {
      const run = spawnSync('bash', ['-c', script], { cwd: ROOT, env: { ...process.env, TMPDIR: tmp, LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 120_000 });
      assert.equal(run.status, 0, `walkthrough failed:\n${run.stderr}`);
      const out = run.stdout;
      assert.ok(out.includes('customer sealed: true features: ckks 5'), out);
      assert.match(out, /\{"key_id":"ckks-[0-9a-f]{16}","length":1,"scalar":true,"ciphertexts":1,"remaining_depth":1,/);
      assert.ok(out.includes('score 0.321000 plaintext 0.321000 relative error < 1e-6: true'), out);
      assert.deepEqual(await readdir(tmp), [], 'the walkthrough cleans up after itself');
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('documents every CLI operation the command accepts', async () => {
    const md = await readFile(join(ROOT, 'docs/fhe.md'), 'utf8');
    const { command } = await import('../../src/cli/commands/fhe.js');
    for (const op of ['encrypt', 'add', 'add-plain', 'mul', 'sum', 'mean', 'dot', 'info']) {
      assert.ok(md.includes(`fhe ${op}`), `docs mention fhe ${op}`);
      assert.ok(command.help.includes(`  ${op} `), `help lists ${op}`);
    }
  });
});
