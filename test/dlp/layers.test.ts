import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { bytes, scanner, text } from './helpers.js';

const EMAIL = 'alice.smith@corp-mail.com';
const CARD = '4111 1111 1111 1111';

/** The shape of a JSON value: same keys, same array lengths, same types; string contents ignored. */
function shape(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(shape);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shape(x)]));
  return typeof v;
}

test('JSON: only the matched text changes; formatting, key order and other bytes are preserved', () => {
  const original = JSON.stringify({ id: 7, user: { note: `mail ${EMAIL} now`, tags: ['a', 'b'] }, ok: true, n: null }, null, 2);
  const r = scanner().scan(bytes(original), 'application/json');
  assert.equal(r.action, 'redact');
  assert.deepEqual(r.findings, { EMAIL: 1 });
  assert.equal(text(r), original.replace(EMAIL, '[REDACTED:EMAIL]'));
});

test('JSON: property names are scanned, values get their property name as context', () => {
  const r = scanner().scan(bytes({ [EMAIL]: { routing_number: '021000021', invoice: '021000021' } }), 'application/json');
  assert.deepEqual(r.findings, { EMAIL: 1, ABA_ROUTING: 1 });
  assert.deepEqual(JSON.parse(text(r)), { '[REDACTED:EMAIL]': { routing_number: '[REDACTED:ABA_ROUTING]', invoice: '021000021' } });
});

test('JSON: \\u escapes are decoded before scanning and the output stays valid JSON', () => {
  const body = '{"to":"alice.smith\\u0040corp-mail.com","x":"caf\\u00e9"}';
  const r = scanner().scan(bytes(body), 'application/json');
  assert.deepEqual(r.findings, { EMAIL: 1 });
  assert.deepEqual(JSON.parse(text(r)), { to: '[REDACTED:EMAIL]', x: 'café' });
});

test('JSON: a number literal that is a card becomes the redaction string', () => {
  const r = scanner().scan(bytes('{"card":4111111111111111,"qty":3,"ts":1764300000123}'), 'application/json');
  assert.deepEqual(r.findings, { CREDIT_CARD: 1 });
  assert.deepEqual(JSON.parse(text(r)), { card: '[REDACTED:CREDIT_CARD]', qty: 3, ts: 1764300000123 });
});

test('JSON inside a JSON string (tool-call arguments) is re-serialised as JSON', () => {
  const args = JSON.stringify({ to: EMAIL, body: `card ${CARD}`, n: 2 });
  const body = { tool_calls: [{ id: 'call_1', function: { name: 'send', arguments: args } }] };
  const r = scanner().scan(bytes(body), 'application/json');
  assert.deepEqual(r.findings, { EMAIL: 1, CREDIT_CARD: 1 });
  const out = JSON.parse(text(r));
  assert.deepEqual(shape(out), shape(body));
  assert.deepEqual(JSON.parse(out.tool_calls[0].function.arguments), { to: '[REDACTED:EMAIL]', body: 'card [REDACTED:CREDIT_CARD]', n: 2 });
});

test('JSON string literal inside a string, two levels deep', () => {
  const inner = JSON.stringify(JSON.stringify({ note: EMAIL }));
  const r = scanner().scan(bytes({ blob: inner }), 'application/json');
  assert.deepEqual(r.findings, { EMAIL: 1 });
  assert.deepEqual(JSON.parse(JSON.parse(JSON.parse(text(r)).blob)), { note: '[REDACTED:EMAIL]' });
});

test('base64 that decodes to text is scanned and re-encoded in the same alphabet', () => {
  for (const encoding of ['base64', 'base64url'] as const) {
    const blob = Buffer.from(`attachment for ${EMAIL}, thanks!`).toString(encoding);
    const r = scanner().scan(bytes({ data: blob }), 'application/json');
    assert.deepEqual(r.findings, { EMAIL: 1 }, encoding);
    const out = JSON.parse(text(r)).data as string;
    assert.equal(Buffer.from(out, encoding).toString(), 'attachment for [REDACTED:EMAIL], thanks!');
    if (encoding === 'base64url') assert.match(out, /^[A-Za-z0-9_-]+$/);
  }
});

test('base64 that decodes to binary is left alone', () => {
  const noise = Buffer.from(Array.from({ length: 96 }, (_, i) => (i * 73 + 11) % 256)).toString('base64');
  const r = scanner().scan(bytes({ data: noise }), 'application/json');
  assert.equal(r.action, 'pass');
});

test('URL encoding: findings are replaced in place, the rest of the URL is untouched', () => {
  const url = `https://api.acme.io/search?q=${encodeURIComponent(`mail ${EMAIL}`)}&page=2`;
  const r = scanner().scan(bytes({ next: url }), 'application/json');
  assert.deepEqual(r.findings, { EMAIL: 1 });
  const out = JSON.parse(text(r)).next as string;
  assert.equal(new URL(out).searchParams.get('q'), 'mail [REDACTED:EMAIL]');
  assert.equal(new URL(out).searchParams.get('page'), '2');
});

test('backslash escapes in text (a JSON document pasted into a log line)', () => {
  const line = `INFO payload="${JSON.stringify(JSON.stringify({ to: EMAIL, pem: '-' })).slice(1, -1)}"\n`;
  const r = scanner().scan(bytes(line), 'text/plain');
  assert.deepEqual(r.findings, { EMAIL: 1 });
  assert.equal(text(r), line.replace(EMAIL, '[REDACTED:EMAIL]'));
});

test('form bodies stay valid forms with the same fields in the same order', () => {
  const form = new URLSearchParams({ name: 'Bob Jones', email: EMAIL, note: `card ${CARD} & more`, empty: '' }).toString();
  const r = scanner().scan(bytes(form), 'application/x-www-form-urlencoded; charset=utf-8');
  assert.deepEqual(r.findings, { EMAIL: 1, CREDIT_CARD: 1 });
  const out = new URLSearchParams(text(r));
  assert.deepEqual([...out.keys()], ['name', 'email', 'note', 'empty']);
  assert.equal(out.get('email'), '[REDACTED:EMAIL]');
  assert.equal(out.get('note'), 'card [REDACTED:CREDIT_CARD] & more');
  assert.equal(out.get('name'), 'Bob Jones');
});

test('gzip bodies are inflated, scanned and re-gzipped (Content-Encoding stays true)', () => {
  const json = JSON.stringify({ msg: `for ${EMAIL}` });
  for (const contentType of ['application/json', 'application/gzip', undefined]) {
    const r = scanner().scan(gzipSync(json), contentType);
    assert.equal(r.action, 'redact', String(contentType));
    assert.ok(r.body);
    assert.deepEqual(JSON.parse(gunzipSync(r.body).toString()), { msg: 'for [REDACTED:EMAIL]' });
  }
});

test('bytes that are not UTF-8 are scanned as Latin-1 and every other byte is kept', () => {
  const head = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
  const body = Buffer.concat([head, Buffer.from(` ${EMAIL} `), head]);
  const r = scanner().scan(body, 'application/octet-stream');
  assert.deepEqual(r.findings, { EMAIL: 1 });
  assert.ok(r.body);
  assert.deepEqual(Buffer.from(r.body), Buffer.concat([head, Buffer.from(' [REDACTED:EMAIL] '), head]));
});

test('plain text and text that only looks like JSON', () => {
  const r = scanner().scan(bytes(`[note] reach ${EMAIL} [end]`), 'text/plain');
  assert.equal(text(r), '[note] reach [REDACTED:EMAIL] [end]');
});

test('property: redacting arbitrary JSON with planted values keeps it valid JSON of the same shape', () => {
  const planted = fc.constantFrom(EMAIL, `card ${CARD}`, 'routing', `x ${EMAIL} y`, 'SSN 536-22-1234', 'ok');
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 1 }), planted, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 6 }), tie('node'), { maxKeys: 4 })),
  })).node;
  const s = scanner();
  fc.assert(
    fc.property(value, fc.boolean(), (v, pretty) => {
      const body = JSON.stringify(v, null, pretty ? 2 : undefined);
      const r = s.scan(bytes(body), 'application/json');
      const out = r.action === 'redact' ? JSON.parse(text(r)) : JSON.parse(body);
      assert.deepEqual(shape(out), shape(JSON.parse(body)));
      assert.ok(!JSON.stringify(out).includes(EMAIL));
    }),
    { numRuns: 300, seed: 7 },
  );
});
