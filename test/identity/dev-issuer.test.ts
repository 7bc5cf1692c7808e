import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader, decodeJwt } from 'jose';
import { CredentialError } from '../../src/errors.js';
import { ensureDevIssuer, mintDevToken } from '../../src/identity/dev-issuer.js';
import { CredentialVerifier } from '../../src/identity/verifier.js';
import { AUDIENCE, ISSUER, settings, tempDir } from './helpers.js';

const CLAIMS = { role: 'role', attestation: 'attestation_hash', spiffe: 'spiffe_id' };

let dir: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir, cleanup } = await tempDir());
});
after(() => cleanup());

function paths(name: string) {
  return {
    jwksFile: join(dir, name, 'public', 'issuer.jwks.json'),
    privateKeyFile: join(dir, name, 'private', 'issuer.private.jwk.json'),
  };
}

function verifierFor(jwksFile: string, now?: () => number) {
  return new CredentialVerifier(settings({ jwksFile }), { maxAgeMs: () => 600_000, now });
}

describe('dev issuer', () => {
  it('creates a key pair (private 0600) and mints tokens the verifier accepts', async () => {
    const p = paths('roundtrip');
    const written = await ensureDevIssuer(p);
    assert.deepEqual(written.sort(), [p.jwksFile, p.privateKeyFile].sort());
    assert.equal((await stat(p.privateKeyFile)).mode & 0o777, 0o600);

    const set = JSON.parse(await readFile(p.jwksFile, 'utf8')) as { keys: Array<Record<string, unknown>> };
    assert.equal(set.keys.length, 1);
    assert.deepEqual(Object.keys(set.keys[0]).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.equal(set.keys[0].alg, 'ES256');
    assert.equal(set.keys[0].use, 'sig');

    const token = await mintDevToken({
      privateKeyFile: p.privateKeyFile, issuer: ISSUER, audience: AUDIENCE, agentId: 'planner-7', role: 'ORCHESTRATOR',
      ttlMs: 600_000, attestation: 'sha256:abcd', spiffeId: 'spiffe://mesh.local/ns/agents/sa/planner', claims: CLAIMS,
    });
    const header = decodeProtectedHeader(token);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.kid, set.keys[0].kid);
    const payload = decodeJwt(token);
    assert.equal(typeof payload.jti, 'string');
    assert.equal(payload.nbf, payload.iat);
    assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 600);

    const v = verifierFor(p.jwksFile);
    const cred = await v.verify(token);
    assert.deepEqual(
      { ...cred, issuedAtMs: 0, expiresAtMs: 0, jti: undefined },
      {
        agentId: 'planner-7', role: 'ORCHESTRATOR', attestation: 'sha256:abcd',
        spiffeId: 'spiffe://mesh.local/ns/agents/sa/planner', issuedAtMs: 0, expiresAtMs: 0, jti: undefined,
        kid: set.keys[0].kid,
        // The dev key's kid is its RFC 7638 thumbprint, so both name the same key.
        keyThumbprint: set.keys[0].kid,
      },
    );
    v.close();
    assert.deepEqual(await ensureDevIssuer(p), [], 'a second run writes nothing');
  });

  it('uses the configured claim names and an injected clock', async () => {
    const p = paths('claims');
    await ensureDevIssuer(p);
    const now = 1_800_000_000_000;
    const token = await mintDevToken({
      privateKeyFile: p.privateKeyFile, agentId: 'a', role: 'R', ttlMs: 60_000, attestation: 'sha256:01',
      claims: { role: 'x_role', attestation: 'x_att', spiffe: 'x_sp' }, now,
    });
    const payload = decodeJwt(token);
    assert.equal(payload.iat, now / 1000);
    assert.equal(payload.x_role, 'R');
    assert.equal(payload.x_att, 'sha256:01');
    assert.equal(payload.x_sp, undefined);
    assert.equal(payload.iss, undefined);
    const v = new CredentialVerifier(
      settings({ jwksFile: p.jwksFile, issuer: undefined, audiences: [], roleClaim: 'x_role', attestationClaim: 'x_att' }),
      { maxAgeMs: () => 600_000, now: () => now + 1_000 },
    );
    assert.equal((await v.verify(token)).role, 'R');
    v.close();
  });

  it('derives a missing JWKS from an existing private key', async () => {
    const p = paths('derive');
    await ensureDevIssuer(p);
    const before = await readFile(p.jwksFile, 'utf8');
    await rm(p.jwksFile);
    assert.deepEqual(await ensureDevIssuer(p), [p.jwksFile]);
    assert.deepEqual(JSON.parse(await readFile(p.jwksFile, 'utf8')), JSON.parse(before));
  });

  it('never touches an existing JWKS: a lost private key is not replaced by one the mesh would trust', async () => {
    const p = paths('external');
    await ensureDevIssuer(p);
    const before = await readFile(p.jwksFile, 'utf8');
    await rm(p.privateKeyFile);
    assert.deepEqual(await ensureDevIssuer(p), []);
    assert.equal(await readFile(p.jwksFile, 'utf8'), before);
    await assert.rejects(stat(p.privateKeyFile), /ENOENT/);
    await assert.rejects(
      mintDevToken({ privateKeyFile: p.privateKeyFile, agentId: 'a', role: 'R', ttlMs: 60_000, claims: CLAIMS }),
      /not found: run `mesh-pep keys init`/,
    );
    // Not even a JWKS that is not valid JSON is rewritten.
    await writeFile(p.jwksFile, 'not json');
    assert.deepEqual(await ensureDevIssuer(p), []);
    assert.equal(await readFile(p.jwksFile, 'utf8'), 'not json');
  });

  it('reports bad inputs clearly', async () => {
    const base = { privateKeyFile: join(dir, 'nope.json'), agentId: 'a', role: 'R', ttlMs: 1000, claims: CLAIMS };
    await assert.rejects(mintDevToken(base), /not found.*keys init/);
    await writeFile(join(dir, 'pub-only.json'), JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', kid: 'k' }));
    await assert.rejects(mintDevToken({ ...base, privateKeyFile: join(dir, 'pub-only.json') }), /not an EC P-256 private JWK/);
    const q = paths('ok');
    await ensureDevIssuer(q);
    await assert.rejects(mintDevToken({ ...base, privateKeyFile: q.privateKeyFile, ttlMs: 0 }), TypeError);
    await assert.rejects(mintDevToken({ ...base, privateKeyFile: q.privateKeyFile, agentId: '' }), TypeError);
  });

  it('an expired dev token maps to expired_credential', async () => {
    const p = paths('expired');
    await ensureDevIssuer(p);
    const now = 1_800_000_000_000;
    const token = await mintDevToken({ privateKeyFile: p.privateKeyFile, issuer: ISSUER, audience: AUDIENCE, agentId: 'a', role: 'R', ttlMs: 60_000, claims: CLAIMS, now });
    const v = verifierFor(p.jwksFile, () => now + 60_000 + 31_000);
    await assert.rejects(v.verify(token), (e: unknown) => e instanceof CredentialError && e.code === 'expired_credential');
    v.close();
  });
});
