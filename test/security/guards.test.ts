import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importJWK, SignJWT, type JWK } from 'jose';
import type { DomainPolicy } from '../../src/config/types.js';
import type { VerifiedCredential } from '../../src/identity/verifier.js';
import { RevocationRegistry } from '../../src/policy/guards/revocation.js';
import { SharedIdentityGuard } from '../../src/policy/guards/shared-identity.js';
import { compilePrincipalPattern } from '../../src/policy/guards/principal-pattern.js';
import type { RequestAttributes } from '../../src/policy/request.js';
import { runCli } from '../support/cli.js';
import { CALLEE_SPIFFE, CALLER_SPIFFE, denyReason, envoyCheckRequest } from '../support/envoy-check.js';
import { policyYaml } from '../support/mesh-fixture.js';
import { isAllow, startHarness, type SecurityHarness } from './support.js';

const ZONES = `  zones:
    - name: agents
      principals: ["spiffe://cluster.local/ns/agents/sa/*"]
    - name: sandbox
      principals: ["spiffe://cluster.local/ns/sandbox/sa/*"]
  revocation:
    file: revoked.yaml
`;
const DOMAINS = `
    - name: agent_memory
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER, ORCHESTRATOR]
      metadata_masking: true
      match: {hosts: ["memory.agents.svc"]}
      zones:
        allow: [{from: agents, to: agents}]
      deny_shared_identity: true
    - name: coordination
      tier: RETRIEVAL
      allowed_roles: [ORCHESTRATOR, EXECUTOR, RETRIEVER]
      match: {hosts: ["*.coord.svc"]}
      zones:
        allow: [{from: agents}, {from: sandbox, to: agents}]
        allow_unzoned: true
`;
const SANDBOX = 'spiffe://cluster.local/ns/sandbox/sa/runner';
const UNZONED = 'spiffe://other.domain/ns/agents/sa/retriever';

function withDestination(req: ReturnType<typeof envoyCheckRequest>, principal: string) {
  return { attributes: { ...req.attributes, destination: { ...req.attributes.destination, principal } } };
}

async function auditEvents(file: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('trust zones, revocation and shared identities (real gRPC server)', () => {
  let h: SecurityHarness;
  let revokedFile: string;
  before(async () => {
    // The revocation file must exist before the server starts (a missing one refuses to start).
    h = await startHarness(policyYaml(DOMAINS, ZONES), { files: { 'revoked.yaml': 'agents: []\n' } });
    revokedFile = path.join(h.fx.dir, 'revoked.yaml');
  });
  after(() => h?.close());

  const token = (agent: string, role = 'RETRIEVER') => h.fx.token({ agent, role });
  const mem = (t: string, principal = CALLER_SPIFFE) => envoyCheckRequest({ token: t, principal });
  const coord = (t: string, principal = CALLER_SPIFFE) => envoyCheckRequest({ token: t, principal, host: 'api.coord.svc', path: '/x' });

  it('same-zone call allowed; other zone, unzoned caller and callee in another zone denied zone_denied', async () => {
    const t = await token('agent-z1');
    assert.ok(isAllow(await h.client.check(mem(t))));
    assert.equal(denyReason(await h.client.check(mem(await token('agent-z2'), SANDBOX))), 'zone_denied');
    assert.equal(denyReason(await h.client.check(mem(await token('agent-z3'), UNZONED))), 'zone_denied');
    // "*" stays within one path segment: a deeper path is not in the zone.
    assert.equal(denyReason(await h.client.check(mem(await token('agent-z4'), `${CALLER_SPIFFE}/extra`))), 'zone_denied');
    assert.equal(denyReason(await h.client.check(withDestination(mem(await token('agent-z5')), SANDBOX))), 'zone_denied');
  });

  it('a domain that opts in admits unzoned callers; rules with "to" constrain the callee', async () => {
    assert.ok(isAllow(await h.client.check(coord(await token('agent-c1'), UNZONED))));
    assert.ok(isAllow(await h.client.check(coord(await token('agent-c2'), SANDBOX))));
    assert.equal(denyReason(await h.client.check(withDestination(coord(await token('agent-c3'), SANDBOX), 'spiffe://cluster.local/ns/sandbox/sa/db'))), 'zone_denied');
  });

  it('revocation file: revoked within one reload, a bad file keeps the last good list, un-revoking works', async () => {
    const t = await token('agent-r1');
    assert.ok(isAllow(await h.client.check(mem(t))));
    await writeFile(revokedFile, 'agents: [agent-r1]\n');
    await h.server.runtime.reload();
    assert.equal(denyReason(await h.client.check(mem(t))), 'revoked');
    await writeFile(revokedFile, 'agents: {this is: [not a list\n');
    await h.server.runtime.reload();
    assert.equal(denyReason(await h.client.check(mem(t))), 'revoked', 'garbage must not clear the list');
    await writeFile(revokedFile, 'agents: []\nkey_ids: []\n');
    await h.server.runtime.reload();
    assert.ok(isAllow(await h.client.check(mem(t))));
    // Revoking the issuer key id revokes every credential it signed.
    const kid = JSON.parse(await readFile(h.fx.policy.keys.issuerPrivateKeyFile, 'utf8')).kid as string;
    await writeFile(revokedFile, `key_ids: ["${kid}"]\n`);
    await h.server.runtime.reload();
    assert.equal(denyReason(await h.client.check(mem(await token('agent-r2')))), 'revoked');
    await writeFile(revokedFile, '');
    await h.server.runtime.reload();
    assert.ok(isAllow(await h.client.check(mem(await token('agent-r3')))));
  });

  it('a revoked issuer key cannot be slipped past by leaving kid out of the token header', async () => {
    const jwk = JSON.parse(await readFile(h.fx.policy.keys.issuerPrivateKeyFile, 'utf8')) as JWK & { kid: string };
    const key = await importJWK(jwk, 'ES256');
    const now = Math.floor(Date.now() / 1000);
    const payload = { sub: 'agent-nokid', role: 'RETRIEVER', iss: h.fx.policy.identity.issuer, aud: 'agent-mesh', iat: now, exp: now + 300, spiffe_id: CALLER_SPIFFE };
    const kidless = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'JWT' }).sign(key);
    await writeFile(revokedFile, `key_ids: ["${jwk.kid}"]\n`);
    await h.server.runtime.reload();
    try {
      // Every issuer key has a kid, so a token without one is refused outright (before: allowed).
      assert.equal(denyReason(await h.client.check(mem(kidless))), 'invalid_credential');
      assert.equal(denyReason(await h.client.check(mem(await token('agent-withkid')))), 'revoked');
    } finally {
      await writeFile(revokedFile, '');
      await h.server.runtime.reload();
    }
  });

  it('inline policy revocation applies on policy reload', async () => {
    const t = await token('agent-r9');
    assert.ok(isAllow(await h.client.check(mem(t))));
    const text = await readFile(h.fx.policyFile, 'utf8');
    await writeFile(h.fx.policyFile, text.replace('    file: revoked.yaml\n', '    file: revoked.yaml\n    agents: [agent-r9]\n'));
    const r = await h.server.runtime.reload();
    assert.ok(r.ok, r.errors.join('\n'));
    assert.equal(denyReason(await h.client.check(mem(t))), 'revoked');
    await writeFile(h.fx.policyFile, text);
    await h.server.runtime.reload();
    assert.ok(isAllow(await h.client.check(mem(t))));
  });

  it('shared identity: flagged in the audit everywhere, denied identity_mismatch where the domain says so', async () => {
    const OTHER = 'spiffe://cluster.local/ns/agents/sa/impostor';
    const t1 = await token('agent-s1');
    assert.ok(isAllow(await h.client.check(coord(t1))));
    assert.ok(isAllow(await h.client.check(coord(t1, OTHER))), 'coordination only flags');
    const t2 = await token('agent-s2');
    assert.ok(isAllow(await h.client.check(mem(t2))));
    assert.equal(denyReason(await h.client.check(mem(t2, OTHER))), 'identity_mismatch');
    assert.equal(denyReason(await h.client.check(mem(t2))), 'identity_mismatch', 'both workloads are denied while the identity is shared');
    let flags: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 50 && flags.length < 2; i++) {
      flags = (await auditEvents(h.fx.policy.audit.file)).filter((e) => e.event === 'identity.shared');
      if (flags.length < 2) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(flags.length, 2);
    assert.deepEqual(flags.map((f) => [f.domain, f.decision, f.reason]), [['coordination', 'pass', 'identity_mismatch'], ['agent_memory', 'deny', 'identity_mismatch']]);
    // Masking domain: the flag carries the pseudonym, never the agent id or a principal.
    const memFlag = JSON.stringify(flags[1]);
    assert.ok(!memFlag.includes('agent-s2') && !memFlag.includes('impostor') && !memFlag.includes(CALLEE_SPIFFE));
  });
});

describe('guard units', () => {
  it('principal patterns: "*" matches within one segment, everything else literally', () => {
    const m = compilePrincipalPattern('spiffe://cluster.local/ns/agents/sa/*');
    assert.ok(m('spiffe://cluster.local/ns/agents/sa/retriever'));
    assert.ok(!m('spiffe://cluster.local/ns/agents/sa/a/b'));
    assert.ok(!m('spiffe://cluster.local/ns/agents-evil/sa/x'));
    assert.ok(!compilePrincipalPattern('spiffe://a.b/x')('spiffe://aXb/x'), 'dots are literal');
  });

  it('shared-identity tracking stays bounded', () => {
    const g = new SharedIdentityGuard(() => ({ windowMs: 60_000, maxTrackedAgents: 100 }), () => undefined);
    const domain = { name: 'd', denySharedIdentity: true } as DomainPolicy;
    for (let i = 0; i < 20_000; i++) {
      const request = { sourcePrincipal: `spiffe://x/ns/a/sa/${i % 7}` } as RequestAttributes;
      g.check({ request, domain, credential: { agentId: `agent-${i}` } as VerifiedCredential, now: i });
    }
    assert.ok(g.trackedAgents <= 100);
    // The window expires old principals: after it, a second workload is no longer "shared".
    const request = (p: string) => ({ sourcePrincipal: p }) as RequestAttributes;
    const cred = { agentId: 'solo' } as VerifiedCredential;
    assert.equal(g.check({ request: request('spiffe://x/a'), domain, credential: cred, now: 1_000_000 }), undefined);
    assert.equal(g.check({ request: request('spiffe://x/b'), domain, credential: cred, now: 1_000_001 }), 'identity_mismatch');
    assert.equal(g.check({ request: request('spiffe://x/b'), domain, credential: cred, now: 1_100_000 }), undefined);
  });

  it('shared-identity tracking keeps the agents it keeps seeing', () => {
    const g = new SharedIdentityGuard(() => ({ windowMs: 60_000, maxTrackedAgents: 3 }), () => undefined);
    const domain = { name: 'd', denySharedIdentity: true } as DomainPolicy;
    const at = (agentId: string, p: string, now: number) =>
      g.check({ request: { sourcePrincipal: `spiffe://x/${p}` } as RequestAttributes, domain, credential: { agentId } as VerifiedCredential, now });
    at('busy', 'a', 1);
    // 51 rounds: with first-in-first-out eviction "busy" would be out right now.
    for (let i = 0; i < 51; i++) {
      at('busy', 'a', 2 + i); // one agent seen all along
      at(`passer-${i}`, 'p', 2 + i); // and a stream of agents seen once
    }
    assert.equal(g.trackedAgents, 3);
    // Still tracked: its second workload is caught at once.
    assert.equal(at('busy', 'b', 100), 'identity_mismatch');
  });

  it('revocation changes drop matching cached credentials', async () => {
    const dropped: string[] = [];
    const cached = [{ agentId: 'a', jti: 'j1', kid: 'k1' }, { agentId: 'b', jti: 'j2', kid: 'k2' }] as VerifiedCredential[];
    const reg = new RevocationRegistry({ invalidate: (pred) => dropped.push(...cached.filter(pred).map((c) => c.agentId)) });
    await reg.apply({ agents: new Set(), tokenIds: new Set(['j2']), keyIds: new Set(), file: undefined });
    assert.deepEqual(dropped, ['b']);
    reg.close();
  });
});

describe('validate: zones', () => {
  it('unknown zone names are errors with line:col; unreachable domains are warnings', async () => {
    const { createMeshFixture } = await import('../support/mesh-fixture.js');
    const fx = await createMeshFixture();
    try {
      const bad = policyYaml(DOMAINS.replace('{from: agents, to: agents}', '{from: agents, to: agentz}'), ZONES.replace('  revocation:\n    file: revoked.yaml\n', ''));
      await writeFile(fx.policyFile, bad);
      const r = await runCli(['validate', '--config', fx.policyFile]);
      assert.equal(r.code, 1);
      const line = bad.split('\n').findIndex((l) => l.includes('agentz')) + 1;
      assert.match(r.stdout + r.stderr, new RegExp(`security_mesh\\.yaml:${line}:\\d+: .*unknown zone "agentz"`));

      const unreachable = policyYaml(DOMAINS.replace('allow: [{from: agents, to: agents}]', 'allow: []'), ZONES.replace('  revocation:\n    file: revoked.yaml\n', ''));
      await writeFile(fx.policyFile, unreachable);
      const w = await runCli(['validate', '--config', fx.policyFile]);
      assert.equal(w.code, 0, w.stderr);
      assert.match(w.stdout + w.stderr, /warning: .*"agent_memory" is unreachable/);
    } finally {
      await fx.cleanup();
    }
  });
});
