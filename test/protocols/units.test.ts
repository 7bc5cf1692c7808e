import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parsePolicy } from '../../src/config/load.js';
import { formatProblem } from '../../src/errors.js';
import { compileGlob } from '../../src/protocols/glob.js';
import { JsonRejected, parseStrictJson } from '../../src/protocols/json.js';
import { rewriteEventStream } from '../../src/protocols/sse.js';
import { policyYaml } from '../support/mesh-fixture.js';
import { MCP_DOMAINS } from './fixtures.js';

describe('strict JSON (duplicate keys, raw ids)', () => {
  it('refuses duplicate keys at any depth, also when escaped differently', () => {
    for (const t of ['{"a":1,"a":2}', '{"x":{"a":1,"\\u0061":2}}', '[{"id":1},{"k":{"b":1,"b":1}}]', '{"__proto__":1,"__proto__":2}']) {
      assert.throws(() => parseStrictJson(t), JsonRejected, t);
    }
    assert.doesNotThrow(() => parseStrictJson('[{"a":1},{"a":2}]'), 'equal keys in sibling objects are fine');
  });

  it('keeps the raw text of each message id', () => {
    assert.deepEqual(parseStrictJson('{"id":1.50,"x":{"id":2}}').rawIds, ['1.50']);
    assert.deepEqual(parseStrictJson('[{"id":"a"},{"method":"m"},{"id":18446744073709551617}]').rawIds, ['"a"', undefined, '18446744073709551617']);
  });

  it('accepts exactly what JSON.parse accepts (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
        let native = true;
        try {
          JSON.parse(text);
        } catch {
          native = false;
        }
        let strict = true;
        try {
          parseStrictJson(text);
        } catch (e) {
          assert.ok(e instanceof JsonRejected);
          strict = false;
        }
        // fc.json never repeats a key, so the two agree whenever the text is valid.
        assert.equal(strict, native, text);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses nesting beyond the limit instead of recursing without bound', () => {
    assert.throws(() => parseStrictJson('['.repeat(100000) + ']'.repeat(100000)), JsonRejected);
  });
});

describe('name globs', () => {
  it('match with * inside names and nothing else', () => {
    const g = compileGlob('fs_read_*');
    assert.ok(g.matches('fs_read_file') && g.matches('fs_read_'));
    assert.ok(!g.matches('fs_write_file') && !g.matches('xfs_read_file'));
    assert.ok(compileGlob('a*b*c').matches('aXXbYYc') && !compileGlob('a*b*c').matches('aXXbYY'));
    assert.ok(compileGlob('exact.name').matches('exact.name') && !compileGlob('exact.name').matches('exactXname'));
  });
});

describe('event-stream rewriting', () => {
  it('rewrites only events whose data changes, keeping fields, comments and line endings', () => {
    const text = ': keepalive\r\n\r\nevent: message\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\nretry: 10\r\n\r\ndata: untouched\n\n';
    const out = rewriteEventStream(text, (data) => (data === '{"a":\n1}' ? '{"a":2}' : undefined));
    assert.equal(out, ': keepalive\r\n\r\nevent: message\r\nid: 7\r\ndata: {"a":2}\r\nretry: 10\r\n\r\ndata: untouched\n\n');
    assert.equal(rewriteEventStream(text, () => undefined), undefined);
  });
});

describe('policy: mcp and a2a sections', () => {
  it('the section-7 policy validates', () => {
    const r = parsePolicy(policyYaml(MCP_DOMAINS), 'p.yaml');
    assert.ok(r.policy, r.problems.map(formatProblem).join('\n'));
    const tools = r.policy.domainsByName.get('tools')!;
    assert.equal(tools.tierScope, 'response');
    assert.equal(tools.protocol?.protocol, 'mcp');
  });

  it('reports bad sections at file:line:col: backtracking regex, unknown key, both protocols, bad URL', () => {
    const domains = `
    - name: tools
      tier: RETRIEVAL
      allowed_roles: [EXECUTOR]
      mcp:
        tools:
          - name: t
            roles: [EXECUTOR]
            arguments:
              a: {pattern: "(x+)+\\\\1"}
              b: {max_lenght: 3}
              c: {min: 5, max: 1}
      a2a:
        methods: {message/send: [EXECUTOR]}
        external_url: "https://x.example/path"
`;
    const r = parsePolicy(policyYaml(domains), 'p.yaml');
    assert.equal(r.policy, undefined);
    const lines = r.problems.filter((p) => p.severity === 'error').map(formatProblem);
    const text = lines.join('\n');
    assert.match(text, /p\.yaml:\d+:\d+: .*arguments\.a\.pattern: not a linear-time \(RE2\) regular expression/);
    assert.match(text, /p\.yaml:\d+:\d+: .*arguments\.b\.max_lenght: unknown key/);
    assert.match(text, /arguments\.c\.min: min is greater than max/);
    assert.match(text, /a2a: a domain speaks one agent protocol/);
    assert.match(text, /a2a\.external_url: must be an origin/);
    const pattern = r.problems.find((p) => p.message.includes('arguments.a.pattern'))!;
    assert.equal(policyYaml(domains).split('\n')[pattern.line - 1]!.trim().startsWith('a: {pattern:'), true, 'points at the pattern line');
  });
});
