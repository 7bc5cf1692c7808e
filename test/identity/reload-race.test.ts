import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { parsePolicy } from '../../src/config/load.js';
import type { CompiledPolicy } from '../../src/config/types.js';
import { CredentialVerifier } from '../../src/identity/verifier.js';
import { Pseudonymizer } from '../../src/masking/pseudonym.js';
import { decide } from '../../src/policy/decide.js';
import type { RequestAttributes } from '../../src/policy/request.js';
import { ZoneGuard } from '../../src/policy/guards/zones.js';
import { claims, jwks, newKey, sign, startServer, type TestKey, type TestServer } from './helpers.js';

/**
 * A Check can wait seconds for the issuer's JWKS. A reload that lands meanwhile (a role taken away, a
 * zone narrowed, a domain removed) must govern the decision: nothing may combine the policy read before
 * the fetch with the credential verified after it. The JWKS server holds its answer until the test has
 * swapped the policy, so the order is fixed, not timed.
 */
const CALLER = 'spiffe://cluster.local/ns/agents/sa/retriever';

function policyText(jwksUri: string, body: { roles?: string; zones?: string; domain?: string } = {}): string {
  return `security_mesh:
  identity:
    issuer: "https://issuer.test"
    audiences: ["agent-mesh"]
    jwks_uri: "${jwksUri}"
  zones:
    - name: agents
      principals: [${body.zones ?? `"${CALLER}"`}]
  domains:
    - name: ${body.domain ?? 'mem'}
      tier: RETRIEVAL
      allowed_roles: [${body.roles ?? 'RETRIEVER'}]
      zones: {allow: [{from: agents}]}
`;
}

function compile(text: string): CompiledPolicy {
  const { policy, problems } = parsePolicy(text, '/tmp/reload-race/policy.yaml');
  assert.ok(policy, JSON.stringify(problems));
  return policy;
}

let key: TestKey;
let jwksServer: TestServer;
/** Resolved when the JWKS request arrives (the Check is then waiting inside verification). */
let arrived: () => void = () => {};
let release: () => void = () => {};

before(async () => {
  key = await newKey('ES256');
  jwksServer = await startServer((_req, res) => {
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(jwks(key)));
    };
    release = answer;
    arrived();
  });
});
after(() => jwksServer.close());

async function raceOnce(swapTo: (uri: string) => string): Promise<string> {
  const uri = `${jwksServer.url}/jwks.json`;
  let current = compile(policyText(uri));
  const first = current;
  const verifier = new CredentialVerifier(first.identity, { maxAgeMs: () => 600_000, remoteJwks: { prefetch: false } });
  try {
    const token = await sign(key, claims(Date.now()));
    const req: RequestAttributes = {
      method: 'GET',
      path: '/v1/memory/x',
      host: 'memory.agents.svc',
      headers: new Map([['authorization', `Bearer ${token}`]]),
      sourcePrincipal: CALLER,
      destinationPrincipal: undefined,
      contextExtensions: { domain: 'mem' },
      traceId: undefined,
    };
    const fetching = new Promise<void>((r) => (arrived = r));
    const decision = decide(req, {
      policy: first,
      currentPolicy: () => current,
      credentials: verifier,
      pseudonyms: new Pseudonymizer(randomBytes(32)),
      guards: [new ZoneGuard()],
    });
    await fetching; // verification is now waiting on the JWKS
    current = compile(swapTo(uri)); // the reload
    release();
    const d = await decision;
    return d.kind === 'allow' ? 'allow' : d.reason;
  } finally {
    verifier.close();
  }
}

describe('a reload while a Check waits on the issuer JWKS', () => {
  it('the policy current after verification decides: removed role, narrowed zone, removed domain', async () => {
    assert.equal(await raceOnce((u) => policyText(u)), 'allow', 'unchanged policy: the same request is allowed');
    assert.equal(await raceOnce((u) => policyText(u, { roles: 'ORCHESTRATOR' })), 'role_not_allowed');
    assert.equal(await raceOnce((u) => policyText(u, { zones: '"spiffe://cluster.local/ns/other/sa/*"' })), 'zone_denied');
    assert.equal(await raceOnce((u) => policyText(u, { domain: 'renamed' })), 'no_policy');
  });
});
