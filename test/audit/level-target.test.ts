import assert from 'node:assert/strict';
import { createHmac, createSecretKey, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { isEgressHop, shouldAudit } from '../../src/audit/level.js';
import { auditTarget } from '../../src/audit/target.js';

const DECISIONS = ['allow', 'deny', 'transform', 'pass'] as const;

test('FULL_MESH records every hop and phase durably', () => {
  for (const decision of DECISIONS) {
    for (const egress of [false, true]) {
      assert.deepEqual(shouldAudit('FULL_MESH', { decision, egress }), { record: true, durable: true });
    }
  }
});

test('OUTPUT_ONLY records denials (buffered) and egress hops (durable), nothing else', () => {
  assert.deepEqual(shouldAudit('OUTPUT_ONLY', { decision: 'deny', egress: false }), { record: true, durable: false });
  for (const decision of DECISIONS) {
    assert.deepEqual(shouldAudit('OUTPUT_ONLY', { decision, egress: true }), { record: true, durable: true });
  }
  for (const decision of ['allow', 'transform', 'pass'] as const) {
    assert.deepEqual(shouldAudit('OUTPUT_ONLY', { decision, egress: false }), { record: false, durable: false });
  }
});

test('isEgressHop reads the hop context extension from a Map or a record', () => {
  assert.equal(isEgressHop(new Map([['hop', 'egress']])), true);
  assert.equal(isEgressHop({ hop: ' Egress ' }), true);
  assert.equal(isEgressHop({ hop: 'internal' }), false);
  assert.equal(isEgressHop({ other: 'egress' }), false);
  assert.equal(isEgressHop(undefined), false);
});

test('target: host + path, query and fragment always dropped, host lower-cased', () => {
  assert.equal(auditTarget('KB.Internal:8443', '/v1/search?q=secret&token=abc#frag', undefined), 'kb.internal:8443/v1/search');
  assert.equal(auditTarget('kb', '/a#b', undefined), 'kb/a');
  assert.equal(auditTarget(undefined, undefined, undefined), null);
  assert.equal(auditTarget('', '', undefined), null);
});

test('target in masking domains: host + "#" + HMAC-SHA256(key, path) hex', () => {
  const key = randomBytes(32);
  const t = auditTarget('kb.internal', '/v1/patients/1234?x=1', { key });
  const expected = createHmac('sha256', key).update('/v1/patients/1234').digest('hex');
  assert.equal(t, `kb.internal#${expected}`);
  assert.ok(!t!.includes('patients'));
  // Same key, same path: same value (records can be correlated); another key: unrelated value.
  assert.equal(auditTarget('kb.internal', '/v1/patients/1234', { key: createSecretKey(key) }), t);
  assert.notEqual(auditTarget('kb.internal', '/v1/patients/1234', { key: randomBytes(32) }), t);
  assert.notEqual(auditTarget('kb.internal', '/v1/patients/1235', { key }), t);
});
