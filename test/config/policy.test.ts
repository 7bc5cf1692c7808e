import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parsePolicy } from '../../src/config/load.js';
import { formatProblem } from '../../src/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const TEMPLATE = path.resolve(ROOT, '../shared/seed/security_mesh.template.yaml');
const FIXTURE = path.join(ROOT, 'test/fixtures/security_mesh.template.yaml');

function errors(yaml: string) {
  return parsePolicy(yaml, 'p.yaml').problems.filter((p) => p.severity === 'error').map(formatProblem);
}

const head = 'security_mesh:\n  domains:\n';

describe('policy file', () => {
  it('the blueprint template loads verbatim, with defaults for what it lacks', async () => {
    // The repo keeps a byte-identical copy so the check runs without shared/ beside the clone.
    const text = await readFile(FIXTURE, 'utf8');
    const shared = await readFile(TEMPLATE, 'utf8').catch(() => undefined);
    if (shared !== undefined) assert.equal(text, shared, 'test/fixtures copy matches shared/seed');
    const { policy, problems } = parsePolicy(text, TEMPLATE);
    assert.ok(policy, problems.map(formatProblem).join('\n'));
    assert.deepEqual(policy.domains.map((d) => [d.name, d.tier, d.auditLevel, d.metadataMasking]), [
      ['agent_memory', 'RETRIEVAL', 'FULL_MESH', true],
      ['pii_inference', 'COMPUTATION', 'FULL_MESH', true],
      ['financial_models', 'FHE', 'FULL_MESH', true],
      ['coordination', 'RETRIEVAL', 'OUTPUT_ONLY', false],
    ]);
    assert.equal(policy.domains[0]!.maxTokenAgeMs, 600_000, 'max token age defaults to credential_rotation_interval_ms');
    assert.equal(policy.global.tlsMinVersion, '1.3');
    assert.equal(policy.identity.roleClaim, 'role');
    assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.domains[0]));
  });

  it('the bundled policy is valid without warnings', async () => {
    const file = path.join(ROOT, 'config/security_mesh.yaml');
    const { policy, problems } = parsePolicy(await readFile(file, 'utf8'), file);
    assert.ok(policy);
    assert.deepEqual(problems.map(formatProblem), []);
  });

  it('unknown keys, wrong enums, empty role lists and duplicate domains point at line:col', () => {
    const yaml = `${head}    - name: a
      tier: RETRIEVL
      allowed_roles: []
      colour: red
    - name: a
      tier: FHE
      allowed_roles: [X]
      audit_level: SOMETIMES
`;
    // The list of known keys grows with features; the line names the key and starts the list.
    const e = errors(yaml).map((l) => l.replace(/\(expected one of: name, tier, .*\)$/, '(expected one of: name, tier, …)'));
    assert.deepEqual(e, [
      'p.yaml:4:13: security_mesh.domains[0].tier: "RETRIEVL" is not one of RETRIEVAL | COMPUTATION | FHE',
      'p.yaml:5:22: security_mesh.domains[0].allowed_roles: must not be empty',
      'p.yaml:6:7: security_mesh.domains[0].colour: unknown key "colour" (expected one of: name, tier, …)',
      'p.yaml:7:13: security_mesh.domains[1].name: duplicate domain "a" (first defined at security_mesh.domains[0])',
      'p.yaml:10:20: security_mesh.domains[1].audit_level: "SOMETIMES" is not one of FULL_MESH | OUTPUT_ONLY',
    ]);
  });

  it('not YAML, not a mapping, missing sections, wrong types', () => {
    assert.match(errors('security_mesh: [\n')[0]!, /^p\.yaml:\d+:\d+: not valid YAML/);
    assert.deepEqual(errors('- a\n'), ['p.yaml:1:1: document: expected a mapping']);
    assert.deepEqual(errors('security_mesh:\n  global: {}\n'), ['p.yaml:2:3: security_mesh: missing required key "domains"']);
    assert.deepEqual(errors(`${head}    - name: a\n      tier: FHE\n      allowed_roles: [X]\n      metadata_masking: "yes"\n`), [
      'p.yaml:6:25: security_mesh.domains[0].metadata_masking: expected true or false',
    ]);
    assert.deepEqual(errors(''), ['p.yaml:1:1: document: a value is required']);
  });

  it('semantic rules: sections by tier, mpc parties, canary regexes, host removal, jwks source', () => {
    const yaml = `security_mesh:
  identity: {jwks_file: a.json, jwks_uri: "https://x/jwks"}
  domains:
    - name: a
      tier: RETRIEVAL
      allowed_roles: [X]
      fhe: {paths: [$.x]}
      mask_headers: [host]
      dlp: {action: block, canaries: ["(unclosed"]}
    - name: b
      tier: COMPUTATION
      allowed_roles: [X]
      computation: {mode: mpc, parties: [{name: p1, jwks_file: p1.json}]}
`;
    const e = errors(yaml);
    assert.equal(e.length, 5, e.join('\n'));
    assert.match(e[0]!, /^p\.yaml:2:\d+: security_mesh\.identity: set jwks_file or jwks_uri, not both/);
    assert.ok(e.some((x) => /domains\[0\]\.fhe: only FHE domains/.test(x)));
    assert.ok(e.some((x) => /mask_headers\[0\]: "host" cannot be removed/.test(x)));
    assert.ok(e.some((x) => /canaries\[0\]: invalid regular expression/.test(x)));
    assert.ok(e.some((x) => /domains\[1\]\.computation: mode mpc needs at least two parties/.test(x)));
  });

  it('JSON field paths are checked at load, not per request', () => {
    const e = errors(`${head}    - name: a\n      tier: FHE\n      allowed_roles: [X]\n      fhe: {paths: ["$.ok", "not a path["]}\n`);
    assert.equal(e.length, 1, e.join('\n'));
    assert.match(e[0]!, /^p\.yaml:6:\d+: security_mesh\.domains\[0\]\.fhe\.paths\[1\]: /);
  });

  it('warns about OUTPUT_ONLY audits of sensitive domains and untrusted attestation', () => {
    const { policy, problems } = parsePolicy(`${head}    - name: a\n      tier: FHE\n      allowed_roles: [X]\n      metadata_masking: true\n      attestation_required: true\n      audit_level: OUTPUT_ONLY\n`, 'p.yaml');
    assert.ok(policy);
    const warnings = problems.filter((p) => p.severity === 'warning').map((p) => p.message);
    assert.ok(warnings.some((w) => /audits OUTPUT_ONLY/.test(w)));
    assert.ok(warnings.some((w) => /no security_mesh\.attestation\.trusted_measurements/.test(w)));
  });

  it('compiles relative paths against the policy folder and precomputes header lists', () => {
    const { policy } = parsePolicy(
      `security_mesh:\n  keys: {dir: k}\n  audit: {file: a/x.jsonl}\n  domains:\n    - {name: m, tier: RETRIEVAL, allowed_roles: [X], metadata_masking: true, mask_headers: [X-Custom]}\n`.replace('X-Custom', 'x-custom'),
      '/etc/mesh/policy.yaml',
    );
    assert.ok(policy);
    assert.equal(policy.keys.dir, '/etc/mesh/k');
    assert.equal(policy.audit.file, '/etc/mesh/a/x.jsonl');
    assert.equal(policy.domains[0]!.keyringFile, '/etc/mesh/k/m.jwks.json');
    assert.ok(policy.domains[0]!.maskRequestHeaders.includes('x-custom'));
    assert.ok(policy.domains[0]!.maskRequestHeaders.includes('x-forwarded-for'));
    assert.ok(policy.domains[0]!.maskResponseHeaders.includes('server'));
  });
});
