import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeHost, normalizePath } from '../../src/policy/normalize.js';
import { denyReason, envoyCheckRequest, setHeaders, useCheckServer } from '../support/envoy-check.js';
import { policyYaml } from '../support/mesh-fixture.js';

/**
 * Issue 17, finding 6: a narrow `admin` domain on `/admin` and a broader domain on the same host.
 * Spellings of `/admin` that the callee resolves to `/admin` must be classified under `admin` (whose
 * roles the attacker lacks), never under the broader domain (which would allow them).
 */
const DOMAINS = `
    - name: admin
      tier: RETRIEVAL
      allowed_roles: [ORCHESTRATOR]
      match: {hosts: ["API.svc"], path_prefixes: ["/admin"]}
    - name: public
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER, ORCHESTRATOR]
      match: {hosts: ["api.svc"]}
`;

describe('domain matching on normalised request targets (finding 6)', () => {
  const h = useCheckServer({ yaml: policyYaml(DOMAINS) });

  const check = async (host: string, path: string, role = 'RETRIEVER') => {
    const token = await h.fx.token({ agent: 'agent-n', role });
    return h.client.check(envoyCheckRequest({ host, path, token }));
  };

  it('spellings of /admin are classified under admin and denied for a role admin does not allow', async () => {
    for (const path of ['//admin', '/%61dmin', '/%61%64%6D%69%6E/users', '/public/../admin', '/./admin', '/admin;x', '/admin;x/users', '/public/..;/admin', '/%2e%2e/admin', '/admin/.', '///admin//users?x=1']) {
      const res = await check('api.svc', path);
      assert.equal(res.status.code, 7, `${path} must be denied`);
      assert.equal(denyReason(res), 'role_not_allowed', `${path} must be classified under admin`);
    }
    // The same paths are allowed for the role admin does allow: they really land in admin.
    const ok = await check('api.svc', '/public/../admin', 'ORCHESTRATOR');
    assert.equal(ok.status.code, 0);
    assert.equal(setHeaders(ok).get('x-mesh-domain'), 'admin');
  });

  it('paths outside /admin still belong to the broader domain', async () => {
    for (const path of ['/public', '/administrator', '/admin/../public', '/%41dmin']) {
      const res = await check('api.svc', path);
      assert.equal(res.status.code, 0, `${path} is public`);
      assert.equal(setHeaders(res).get('x-mesh-domain'), 'public');
    }
  });

  it('a trailing dot and the case of the host do not change the domain', async () => {
    for (const host of ['api.svc.', 'API.SVC', 'Api.Svc.:8080']) {
      const res = await check(host, '/admin');
      assert.equal(denyReason(res), 'role_not_allowed', `${host} must match admin`);
      const pub = await check(host, '/items');
      assert.equal(pub.status.code, 0, `${host} must match public`);
    }
  });

  it('a target with no single normal form matches no domain: no_policy', async () => {
    for (const path of ['/admin%2Fx', '/%2fadmin', '/%5cadmin', '/adm%zzin', '/admin%', '/adm\\in', 'admin']) {
      const res = await check('api.svc', path);
      assert.equal(res.status.code, 7, path);
      assert.equal(denyReason(res), 'no_policy', `${path} must be refused`);
    }
    assert.equal(denyReason(await check('api..svc', '/items')), 'no_policy');
    assert.equal(denyReason(await check('api.svc%2e', '/items')), 'no_policy');
  });
});

describe('normalizePath / normalizeHost', () => {
  it('follows RFC 3986 for dot segments, escapes and merged slashes, and drops ; parameters', () => {
    const cases: Record<string, string> = {
      '': '/',
      '/': '/',
      '/a/b': '/a/b',
      '/a/b/': '/a/b/',
      '/a//b': '/a/b',
      '/a/./b': '/a/b',
      '/a/../b': '/b',
      '/../../a': '/a',
      '/a/b/..': '/a/',
      '/a/b/.': '/a/b/',
      '/a;p=1/b;q': '/a/b',
      '/%7euser': '/~user',
      '/a%20b': '/a%20b',
      '/a%3bb': '/a%3Bb',
      '/a?x=/../b': '/a',
      '/a#../b': '/a',
      '/.well-known/agent-card.json': '/.well-known/agent-card.json',
    };
    for (const [raw, want] of Object.entries(cases)) assert.deepEqual(normalizePath(raw), { ok: true, value: want }, raw);
    for (const bad of ['/a%2Fb', '/a%5C', '/%g0', '/%', '/a b', '/a\u0000', 'a/b', '*']) assert.equal(normalizePath(bad).ok, false, bad);
  });

  it('strips one trailing dot from the host and refuses what is not a host name', () => {
    assert.deepEqual(normalizeHost('api.svc.'), { ok: true, value: 'api.svc' });
    assert.deepEqual(normalizeHost('API.Svc'), { ok: true, value: 'api.svc' });
    assert.deepEqual(normalizeHost('[::1]'), { ok: true, value: '[::1]' });
    for (const bad of ['api..svc', 'api.svc..', 'a%2e', 'a b', '.svc']) assert.equal(normalizeHost(bad).ok, false, bad);
  });
});
