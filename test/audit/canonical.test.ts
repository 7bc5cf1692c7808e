import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalJson, chainedLine, hashedLine, recordHash } from '../../src/audit/canonical.js';

test('hashedLine gives what recordHash and canonicalJson give, wherever "hash" falls among the keys', () => {
  const value = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.dictionary(fc.string(), fc.integer()));
  fc.assert(
    fc.property(fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('a', 'event', 'ts', 'prev_hash', 'z', 'hasg', 'hasi', 'h')), value), (rec) => {
      delete (rec as Record<string, unknown>)['hash'];
      const { hash, line } = hashedLine(rec);
      assert.equal(hash, recordHash(rec));
      assert.equal(line, canonicalJson({ ...rec, hash }));
    }),
    { numRuns: 500 },
  );
});

test('chainedLine gives what hashedLine gives for the merged record, for events with and without unknown members', () => {
  const str = fc.oneof(fc.string(), fc.constant(null), fc.constant(undefined));
  const event = fc.record(
    {
      event: str, decision_id: str, domain: str, tier: str, decision: str, reason: str, agent: str, role: str, target: str,
      trace_id: str, audit_level: str, payload_sha256: str, payload_bytes: fc.oneof(fc.nat(), fc.constant(undefined)),
      findings: fc.oneof(fc.dictionary(fc.string(), fc.nat()), fc.constant(undefined)),
    },
    { requiredKeys: [] },
  );
  const extra = fc.dictionary(fc.constantFrom('zzz', 'aaa', 'hash', 'ts', 'prev_hash', 'other'), fc.string(), { maxKeys: 2 });
  fc.assert(
    fc.property(event, fc.option(extra), fc.string(), fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }), (ev, more, ts, prev) => {
      const e: Record<string, unknown> = { ...ev, ...(more ?? {}) };
      assert.deepEqual(chainedLine(e, ts, prev), hashedLine({ ...e, ts, prev_hash: prev }));
    }),
    { numRuns: 1000 },
  );
});
