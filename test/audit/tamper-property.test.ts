import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import fc from 'fast-check';
import { FileAuditSink } from '../../src/audit/file-sink.js';
import type { AuditEvent } from '../../src/audit/record.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { checkEvent, tempAudit } from './fixtures.js';

// Any text, including non-ASCII and characters JSON must escape; U+FFFD is left out because a byte flip
// inside it can decode to the same replacement character.
const text = fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\uFFFD'));

test('property: every single-byte change anywhere in the file is detected, at or before its line', async () => {
  const t = await tempAudit();
  try {
    const events = fc.sample(
      fc.record({ agent: text, target: text, role: text, bytes: fc.nat({ max: 1 << 30 }) }),
      { numRuns: 12, seed: 20261128 },
    );
    const sink = await FileAuditSink.open(t.settings);
    await Promise.all(
      events.map((e, i) =>
        sink.record(checkEvent(i, { agent: e.agent, target: e.target, role: e.role, payload_bytes: e.bytes } as Partial<AuditEvent>), { durable: true }),
      ),
    );
    await sink.close();
    const original = await readFile(t.settings.file);
    assert.equal((await verifyAuditChain(t.settings.file)).ok, true);
    const lineOf = (offset: number) => original.subarray(0, offset).filter((b) => b === 0x0a).length + 1;

    await fc.assert(
      fc.asyncProperty(fc.nat({ max: original.length - 1 }), fc.integer({ min: 1, max: 255 }), async (at, mask) => {
        const buf = Buffer.from(original);
        buf[at] = buf[at]! ^ mask;
        await writeFile(t.settings.file, buf);
        const r = await verifyAuditChain(t.settings.file);
        assert.equal(r.ok, false);
        // A changed line break merges or splits lines, so the report may come one line earlier.
        if (!r.ok) assert.ok(r.line <= lineOf(at) + 1 && r.line >= lineOf(at) - 1, `flip at line ${lineOf(at)} reported at ${r.line}`);
      }),
      { numRuns: 300, seed: 42 },
    );
  } finally {
    await t.cleanup();
  }
});
