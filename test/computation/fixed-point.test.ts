import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fromField, MODULUS, parseFieldElement, randomFieldElements, toField } from '../../src/protect/computation/field.js';
import { decodeFixed, encodeFixed, FixedPointRangeError, MAX_ABS_SCALED } from '../../src/protect/computation/fixed-point.js';
import { FieldPathError, parseFieldPath, parsePointer, pointerOf } from '../../src/protect/json-path.js';
import { splitSecrets } from '../../src/protect/computation/shares.js';

describe('fixed-point encoding', () => {
  it('round-trips every number with at most six decimals exactly', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 27n), max: 10n ** 27n }), (scaled) => {
        const x = decodeFixed(scaled);
        // The double nearest to scaled·10^-6 encodes back to scaled when it has ≤ 17 significant digits.
        if (scaled.toString().replace('-', '').length <= 15) assert.equal(encodeFixed(x), scaled);
        assert.equal(decodeFixed(encodeFixed(x)), x);
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps any finite double in range to within 5·10^-7 (relative to its decimal form)', () => {
    fc.assert(
      fc.property(fc.double({ min: -1e21, max: 1e21, noNaN: true, noDefaultInfinity: true }), (x) => {
        const y = decodeFixed(encodeFixed(x));
        assert.ok(Math.abs(x - y) <= 5e-7 + Math.abs(x) * Number.EPSILON, `${x} → ${y}`);
      }),
      { numRuns: 2000 },
    );
  });

  it('examples', () => {
    assert.equal(encodeFixed(0.1), 100_000n);
    assert.equal(encodeFixed(-19.99), -19_990_000n);
    assert.equal(encodeFixed(1e21), MAX_ABS_SCALED);
    assert.equal(encodeFixed(1.5e-6), 2n);
    assert.equal(encodeFixed(-1.5e-6), -2n);
    assert.equal(encodeFixed(-0), 0n);
    assert.equal(decodeFixed(100_000n), 0.1);
    assert.equal(decodeFixed(-1n), -0.000001);
  });

  it('rejects NaN, ±Infinity and magnitudes beyond 10^21, never wrapping', () => {
    for (const bad of [NaN, Infinity, -Infinity, 1.0000000000000001e21 * 1.01, -2e21, Number.MAX_VALUE]) {
      assert.throws(() => encodeFixed(bad), FixedPointRangeError);
    }
  });
});

describe('field', () => {
  it('samples in [0, p) and maps signed values both ways', () => {
    for (const v of randomFieldElements(2000)) assert.ok(v >= 0n && v < MODULUS);
    for (const v of [0n, 1n, -1n, MAX_ABS_SCALED, -MAX_ABS_SCALED]) assert.equal(fromField(toField(v)), v);
  });

  it('parses only canonical decimal field elements', () => {
    assert.equal(parseFieldElement('0'), 0n);
    assert.equal(parseFieldElement((MODULUS - 1n).toString()), MODULUS - 1n);
    for (const bad of [MODULUS.toString(), '-1', '01', '1e3', '', ' 1', 1, null]) assert.equal(parseFieldElement(bad), undefined);
  });

  it('shares add up to the secret for any number of parties', () => {
    for (const n of [2, 3, 7]) {
      const secrets = [0n, 1n, -1n, MAX_ABS_SCALED, -MAX_ABS_SCALED, 123_456_789n];
      const shares = splitSecrets(secrets.map(toField), n);
      secrets.forEach((s, i) => {
        const sum = shares.reduce((acc, party) => acc + party[i]!, 0n) % MODULUS;
        assert.equal(fromField(sum), s);
      });
    }
    assert.throws(() => splitSecrets([1n], 1), RangeError);
  });
});

describe('field paths and pointers', () => {
  it('parses the supported JSONPath subset', () => {
    assert.deepEqual(parseFieldPath('$.a.b'), [{ kind: 'key', key: 'a' }, { kind: 'key', key: 'b' }]);
    assert.deepEqual(parseFieldPath('a[2]'), [{ kind: 'key', key: 'a' }, { kind: 'index', index: 2 }]);
    assert.deepEqual(parseFieldPath("items[*]['unit price']"), [{ kind: 'key', key: 'items' }, { kind: 'wildcard' }, { kind: 'key', key: 'unit price' }]);
    assert.deepEqual(parseFieldPath('$.*'), [{ kind: 'wildcard' }]);
    for (const bad of ['', '$', '$..a', '$.a[?(@.x)]', '$.a[1:2]', 'a.', '$[01]']) assert.throws(() => parseFieldPath(bad), FieldPathError, bad);
  });

  it('escapes JSON Pointer tokens both ways', () => {
    const tokens = ['a/b', 'c~d', 0, ''];
    const pointer = pointerOf(tokens);
    assert.equal(pointer, '/a~1b/c~0d/0/');
    assert.deepEqual(parsePointer(pointer), ['a/b', 'c~d', '0', '']);
  });
});
