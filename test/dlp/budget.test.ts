import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { compileDlp } from '../../src/dlp/index.js';
import { bytes } from './helpers.js';

const K = 1024;

/**
 * Inputs built to make a backtracking scanner blow up. Each must finish (the test would time out
 * otherwise) and, given an unlimited budget, with a complete scan. No wall-clock assertions: speed is
 * measured by bench/dlp.ts.
 */
const ADVERSARIAL: Record<string, string> = {
  'long run of digits': '7'.repeat(256 * K),
  'digits joined by spaces': '1 '.repeat(128 * K),
  'digits joined by dashes': '12-'.repeat(80 * K),
  'a@a@a@…': 'a@'.repeat(128 * K),
  'a.b@c.…': 'a.b@c.'.repeat(40 * K),
  'BEGIN without END, repeated': '-----BEGIN RSA PRIVATE KEY-----'.repeat(8 * K),
  'BEGIN then 256 KiB of base64': `-----BEGIN PRIVATE KEY-----\n${'A'.repeat(256 * K)}`,
  'base64-ish noise': randomBytes(192 * K).toString('base64'),
  'hex noise': randomBytes(128 * K).toString('hex'),
  'colons': 'ab:'.repeat(80 * K),
  'scheme separators': 'x://u:'.repeat(40 * K),
  'JWT prefixes': 'eyJabcdef.'.repeat(24 * K),
  'percent escapes': '%41'.repeat(80 * K),
  'unicode escapes': '\\u0041'.repeat(40 * K),
  'deep brackets': `${'['.repeat(128 * K)}${']'.repeat(128 * K)}`,
  'IBAN prefixes': 'DE89'.repeat(64 * K),
  'key prefixes': 'sk-ghp_xoxb-AKIA'.repeat(16 * K),
};

for (const [name, input] of Object.entries(ADVERSARIAL)) {
  test(`adversarial input completes: ${name}`, () => {
    const s = compileDlp({ action: 'redact', entities: [], canaries: ['CANARY-[0-9a-f]{8}', '/(?:ab)+c/i'] }, { budgetMs: 600_000 });
    const r = s.scan(bytes(input), 'text/plain');
    assert.equal(r.truncated, false);
    assert.ok(['pass', 'redact'].includes(r.action));
  });
}

test('out of time: redact and block fail closed, report still reports', () => {
  const body = bytes({ note: 'alice.smith@corp-mail.com', pad: 'x'.repeat(64 * K) });
  for (const action of ['redact', 'block'] as const) {
    const r = compileDlp({ action, entities: [], canaries: [] }, { budgetMs: 0 }).scan(body, 'application/json');
    assert.equal(r.truncated, true);
    assert.equal(r.action, 'block', action);
    assert.equal(r.body, undefined);
  }
  const r = compileDlp({ action: 'report', entities: [], canaries: [] }, { budgetMs: 0 }).scan(body, 'application/json');
  assert.equal(r.truncated, true);
  assert.ok(r.action === 'report' || r.action === 'pass');
});

test('body larger than maxBytes: truncated, blocked in redact mode, prefix still reported in report mode', () => {
  const body = bytes(`alice.smith@corp-mail.com ${'x '.repeat(8 * K)}`);
  const redact = compileDlp({ action: 'redact', entities: [], canaries: [] }, { budgetMs: 60_000, maxBytes: 4 * K }).scan(body, 'text/plain');
  assert.deepEqual({ action: redact.action, truncated: redact.truncated, body: redact.body }, { action: 'block', truncated: true, body: undefined });
  const report = compileDlp({ action: 'report', entities: [], canaries: [] }, { budgetMs: 60_000, maxBytes: 4 * K }).scan(body, 'text/plain');
  assert.deepEqual(report, { action: 'report', findings: { EMAIL: 1 }, body: undefined, truncated: true, layers: ['EMAIL@text', 'SCAN_INCOMPLETE@size'] });
  // A block without any finding still names its cause.
  assert.deepEqual(redact.layers, ['EMAIL@text', 'SCAN_INCOMPLETE@size']);
});

test('gzip bomb: inflation stops at maxBytes and the scan is truncated', () => {
  const bomb = gzipSync(Buffer.alloc(16 * 1024 * K));
  const r = compileDlp({ action: 'redact', entities: [], canaries: [] }, { budgetMs: 60_000, maxBytes: 256 * K }).scan(bomb, 'application/json');
  assert.equal(r.truncated, true);
  assert.equal(r.action, 'block');
});

test('corrupt gzip is scanned as the bytes it is', () => {
  const bad = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.from(' alice.smith@corp-mail.com ')]);
  const r = compileDlp({ action: 'report', entities: [], canaries: [] }, { budgetMs: 60_000 }).scan(bad, 'application/octet-stream');
  assert.deepEqual(r.findings, { EMAIL: 1 });
});
