import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isReasonCode, REASONS } from '../../src/policy/reasons.js';

/** The repository root, from the compiled test at dist/test/computation/. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');

describe('docs/computation.md and the README worked example', () => {
  it('the error table names real reason codes with their ext_proc statuses', async () => {
    const md = await readFile(join(ROOT, 'docs/computation.md'), 'utf8');
    const start = md.indexOf('## Errors');
    const next = md.indexOf('\n## ', start + 3);
    const section = md.slice(start, next < 0 ? undefined : next);
    const rows = [...section.matchAll(/\| `([a-z_]+)` \| (\d{3}) \|$/gm)];
    assert.ok(rows.length >= 6, 'error table rows found');
    for (const [, code, status] of rows) {
      assert.ok(isReasonCode(code!), `${code} is a reason code`);
      assert.equal(Number(status), REASONS[code as keyof typeof REASONS].payloadHttp, `status of ${code}`);
    }
  });

  it('the worked example runs as written and prints what the text says', async () => {
    const md = await readFile(join(ROOT, 'README.md'), 'utf8');
    const section = /<!-- walkthrough:computation:start -->([\s\S]*?)<!-- walkthrough:computation:end -->/.exec(md)?.[1];
    assert.ok(section, 'walkthrough markers present');
    const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
    assert.ok(blocks.length >= 3);
    const script = `set -euo pipefail\n${blocks.join('\n').replaceAll('npx mesh-pep', `node ${JSON.stringify(CLI)}`)}`;
    const tmp = await mkdtemp(join(tmpdir(), 'mesh-pep-docs-'));
    try {
      const run = spawnSync('bash', ['-c', script], { cwd: ROOT, env: { ...process.env, TMPDIR: tmp, LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 60_000 });
      assert.equal(run.status, 0, `walkthrough failed:\n${run.stderr}`);
      const out = run.stdout;
      assert.match(out, /"alg":"ECDH-ES\+A256KW".*"x-attestation":"sha256:3b1f/);
      assert.ok(out.includes('{"patient":"Jane Roe","symptoms":"chest pain"}'), out);
      assert.ok(out.includes('{"triage":"urgent","measurement":"sha256:3b1f0c5a8e2d4f6a9b7c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a"}'), out);
      assert.ok(out.includes('{"total":2030.6,"terms":2}'), out);
      assert.ok(out.includes('{"region":"eu-west","revenue":1200.5,"orders":[{"id":"o-1","amount":700.25},{"id":"o-2","amount":500.25}]}'), out);
      assert.ok(out.includes('refused: one party alone cannot open it'), out);
      assert.match(run.stderr, /missing: gcp \(payload_rejected\)/);
      assert.deepEqual(await readdir(tmp), [], 'the walkthrough cleans up after itself');
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
