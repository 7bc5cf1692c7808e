import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalJson, hashedLine, recordHash } from '../../src/audit/canonical.js';

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
