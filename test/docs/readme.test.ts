import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../src/cli/registry.js';
import { parsePolicy } from '../../src/config/load.js';
import { formatProblem } from '../../src/errors.js';
import { REASON_CODES } from '../../src/policy/reasons.js';

/** The README is the front door: what it says about codes, commands and the policy must be true. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`## ${title}`);
  assert.ok(start >= 0, `README has a "${title}" section`);
  const next = readme.indexOf('\n## ', start + 3);
  return readme.slice(start, next < 0 ? undefined : next);
}

describe('README agrees with the code', () => {
  it('the policy reference is a valid policy', () => {
    const ref = section('Policy file reference');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(ref)?.[1];
    assert.ok(yaml);
    const { policy, problems } = parsePolicy(yaml, 'README.md');
    assert.ok(policy, problems.map(formatProblem).join('\n'));
  });

  it('every reason code is in the deny table', () => {
    const table = section('Deny responses');
    for (const code of REASON_CODES) assert.ok(table.includes(`\`${code}\``), `${code} documented`);
  });

  it('every CLI command is in the CLI table', () => {
    const table = section('CLI');
    for (const c of COMMANDS) assert.ok(table.includes(`\`mesh-pep ${c.name}`), `mesh-pep ${c.name} documented`);
  });

  it('the two commands and the sections operators look for are there', () => {
    assert.ok(readme.includes('npm ci && npm start'));
    assert.ok(readme.includes('npm test'));
    for (const s of ['Local Envoy', 'Istio', 'A five-minute tour', 'Envoy and Istio wiring']) section(s);
  });
});
