import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DLP_ENTITIES } from '../../src/dlp/index.js';
import { command } from '../../src/cli/commands/probe.js';

const doc = await readFile(fileURLToPath(new URL('../../../docs/leak-guard.md', import.meta.url)), 'utf8');

test('docs/leak-guard.md documents every entity in its table', () => {
  for (const e of DLP_ENTITIES) assert.match(doc, new RegExp(`^\\| \`${e}\` \\|`, 'm'), e);
});

test('docs and `mesh-pep probe --help` agree on the flags', () => {
  for (const flag of ['--server', '--offline', '--domain', '--audit', '--seed', '--positives', '--negatives', '--json', '--direction']) {
    assert.ok(command.help.includes(flag), `help lists ${flag}`);
    assert.ok(doc.includes(flag), `docs mention ${flag}`);
  }
  assert.ok(doc.includes('MESHPEP-CANARY-[0-9a-f]{16}') && command.help.includes('MESHPEP-CANARY-[0-9a-f]{16}'));
});
