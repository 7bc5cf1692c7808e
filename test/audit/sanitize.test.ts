import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalJson } from '../../src/audit/canonical.js';
import type { AuditEvent } from '../../src/audit/record.js';
import { REDACTED, sanitizeEvent } from '../../src/audit/sanitize.js';
import { checkEvent } from './fixtures.js';

test('a clean event is taken as it is (no copy), and reads the same as a copy would', () => {
  const ev = checkEvent(1, { payload_bytes: 4096, payload_sha256: 'a'.repeat(64) });
  const { event, redacted } = sanitizeEvent(ev);
  assert.equal(event, ev);
  assert.equal(redacted, 0);
  assert.equal(canonicalJson(event), canonicalJson({ ...ev }));
});

test('anything not plainly clean takes the copy path: undeclared members, credentials, odd numbers, findings', () => {
  const smuggled = { ...checkEvent(2), authorization: 'Bearer abcdefghijklmnop' } as AuditEvent;
  assert.equal('authorization' in sanitizeEvent(smuggled).event, false);

  const bearer = sanitizeEvent(checkEvent(3, { target: 'kb.internal/v1?token=Bearer abcdefghijklmnop' }));
  assert.equal(bearer.event['target'], REDACTED);
  assert.equal(bearer.redacted, 1);

  const odd = sanitizeEvent(checkEvent(4, { payload_bytes: 1.5 }));
  assert.equal('payload_bytes' in odd.event, false);

  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig';
  const findings = sanitizeEvent(checkEvent(5, { findings: { EMAIL: 2, [jwt]: 1 } }));
  assert.deepEqual(findings.event['findings'], { EMAIL: 2 });
});
