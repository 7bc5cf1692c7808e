import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDlp, dlpSettingsProblems, DLP_ENTITIES } from '../../src/dlp/index.js';
import { bytes, scanner, text } from './helpers.js';

const BODY = bytes({ messages: [{ role: 'user', content: 'reach me at alice.smith@corp-mail.com, card 4111 1111 1111 1111' }] });
const CLEAN = bytes({ messages: [{ role: 'user', content: 'the weather is nice, order 42 shipped' }] });

test('DLP_ENTITIES is the contract list', () => {
  assert.deepEqual([...DLP_ENTITIES], [
    'EMAIL', 'PHONE', 'US_SSN', 'CREDIT_CARD', 'IBAN', 'ABA_ROUTING', 'IP_ADDRESS', 'AWS_ACCESS_KEY', 'AWS_SECRET_KEY',
    'GITHUB_TOKEN', 'SLACK_TOKEN', 'STRIPE_KEY', 'OPENAI_KEY', 'ANTHROPIC_KEY', 'JWT', 'PRIVATE_KEY', 'CREDENTIAL_URI', 'CANARY',
    // issue 19
    'UK_NHS', 'CA_SIN', 'GOOGLE_API_KEY', 'GCP_SERVICE_ACCOUNT', 'AZURE_STORAGE_KEY', 'NPM_TOKEN', 'CRYPTO_PRIVATE_KEY',
  ]);
});

test('redact: findings counted, body rewritten', () => {
  const r = scanner({ action: 'redact' }).scan(BODY, 'application/json');
  assert.equal(r.action, 'redact');
  assert.deepEqual(r.findings, { EMAIL: 1, CREDIT_CARD: 1 });
  assert.equal(r.truncated, false);
  assert.match(text(r), /\[REDACTED:EMAIL\].*\[REDACTED:CREDIT_CARD\]/);
});

test('block: findings counted, no body (the caller answers 403 dlp_blocked)', () => {
  const r = scanner({ action: 'block' }).scan(BODY, 'application/json');
  assert.deepEqual(r, { action: 'block', findings: { EMAIL: 1, CREDIT_CARD: 1 }, body: undefined, truncated: false, layers: ['CREDIT_CARD@json', 'EMAIL@json'] });
});

test('report: findings counted, body passes unchanged', () => {
  const r = scanner({ action: 'report' }).scan(BODY, 'application/json');
  assert.deepEqual(r, { action: 'report', findings: { EMAIL: 1, CREDIT_CARD: 1 }, body: undefined, truncated: false, layers: ['CREDIT_CARD@json', 'EMAIL@json'] });
});

test('nothing found: pass in every mode', () => {
  for (const action of ['redact', 'block', 'report'] as const) {
    assert.deepEqual(scanner({ action }).scan(CLEAN, 'application/json'), { action: 'pass', findings: {}, body: undefined, truncated: false, layers: [] });
  }
  assert.equal(scanner().scan(new Uint8Array(0), undefined).action, 'pass');
});

test('entities filter limits what is acted on', () => {
  const r = scanner({ action: 'block', entities: ['PHONE'] }).scan(BODY, 'application/json');
  assert.equal(r.action, 'pass');
});

test('findings never carry values', () => {
  const r = scanner({ action: 'report' }).scan(BODY, 'application/json');
  assert.ok(!JSON.stringify(r).includes('alice'));
  assert.ok(!JSON.stringify(r).includes('4111'));
});

test('compile errors: unknown entity, invalid or unsafe canary (message never echoes the pattern)', () => {
  assert.throws(() => compileDlp({ action: 'redact', entities: ['EMAILS'], canaries: [] }), /dlp\.entities: unknown entity "EMAILS"/);
  assert.throws(() => compileDlp({ action: 'redact', entities: [], canaries: ['ok-[0-9]{4}', 'SECRETPATTERN('] }), (err: Error) => {
    assert.match(err.message, /^dlp\.canaries\[1\]: invalid regular expression/);
    assert.ok(!err.message.includes('SECRETPATTERN'));
    return true;
  });
  assert.throws(() => compileDlp({ action: 'redact', entities: [], canaries: ['a*'] }), /dlp\.canaries\[0\]: pattern matches the empty string/);
  // Backreferences and lookaround cannot run in linear time: refused, never run on a backtracking engine.
  assert.throws(() => compileDlp({ action: 'redact', entities: [], canaries: ['/(\\w)\\1x/i'] }), /dlp\.canaries\[0\]: invalid regular expression for the linear-time engine/);
  assert.throws(() => compileDlp({ action: 'redact', entities: [], canaries: ['x(?=y)'] }), /dlp\.canaries\[0\]: invalid regular expression for the linear-time engine/);
  assert.throws(() => compileDlp({ action: 'redact', entities: [], canaries: ['/x/g'] }), /unsupported regular expression flags/);
});

test('a catastrophic canary the linear engine accepts runs in linear time', () => {
  // (a+)+$ would take exponential time on a backtracking engine; the linear engine runs it in one pass.
  const s = compileDlp({ action: 'block', entities: [], canaries: ['(a+)+$'] }, { budgetMs: 60_000 });
  const r = s.scan(bytes(`${'a'.repeat(50_000)}!`), 'text/plain');
  assert.equal(r.action, 'pass');
  assert.equal(r.truncated, false);
});

test('issue 17 finding 7: (x|xx)*y with the i flag is accepted and runs in linear time', () => {
  // On a backtracking engine 36 x's took ~0.5 s and each further x doubled it; 100k would never end.
  const s = compileDlp({ action: 'block', entities: [], canaries: ['/(x|xx)*y/i'] }, { budgetMs: 600_000 });
  for (const n of [36, 100_000]) {
    const r = s.scan(bytes(`${'x'.repeat(n)}!`), 'text/plain');
    assert.equal(r.action, 'pass');
    assert.equal(r.truncated, false);
  }
  assert.deepEqual(s.scan(bytes('a XXY b'), 'text/plain').findings, { CANARY: 1 });
});

test('the time budget stops a canary scan in the middle of a long text', () => {
  const s = compileDlp({ action: 'block', entities: [], canaries: ['/(x|xx)*y/i'] }, { budgetMs: 1 });
  const r = s.scan(bytes('x'.repeat(4 * 1024 * 1024)), 'text/plain');
  assert.equal(r.truncated, true);
  assert.equal(r.action, 'block');
});

test('dlpSettingsProblems lists every problem compileDlp would throw for, by position', () => {
  assert.deepEqual(dlpSettingsProblems({ action: 'redact', entities: ['EMAIL'], canaries: ['ok-[0-9]{4}'] }), []);
  const problems = dlpSettingsProblems({ action: 'redact', entities: ['EMAIL', 'NOPE'], canaries: ['ok', 'x(', '(a+)+b?c*/i', '/(b)\\1/i'] });
  assert.equal(problems.length, 3);
  assert.match(problems[0], /^dlp\.entities: unknown entity "NOPE"/);
  assert.match(problems[1], /^dlp\.canaries\[1\]: invalid regular expression/);
  assert.match(problems[2], /^dlp\.canaries\[3\]: invalid regular expression for the linear-time engine/);
});
