import { createHmac, randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { CheckClient, startTestServer, type CheckResponseView } from '../support/envoy-check.js';
import { createMeshFixture, policyYaml, type MeshFixture } from '../support/mesh-fixture.js';

/**
 * A fixture + real server + real gRPC client, and a signer with the fixture's development issuer key
 * so tests can forge every header and claim variation an attacker could send.
 */
export interface SecurityHarness {
  fx: MeshFixture;
  server: Awaited<ReturnType<typeof startTestServer>>;
  client: CheckClient;
  issuerJwk: JWK & { kid: string; alg: string };
  /** Signs with the real issuer key; header and payload fully under the test's control. */
  sign(payload: JWTPayload, header?: Record<string, unknown>): Promise<string>;
  /** Valid claims for the fixture's issuer and audience, overridable (undefined removes a claim). */
  claims(extra?: Record<string, unknown>): JWTPayload;
  close(): Promise<void>;
}

export async function startHarness(
  yaml = policyYaml(),
  extra: { watchPolicy?: boolean; files?: Record<string, string> } = {},
): Promise<SecurityHarness> {
  const fx = await createMeshFixture(yaml);
  for (const [name, text] of Object.entries(extra.files ?? {})) await writeFile(path.join(fx.dir, name), text);
  const server = await startTestServer(fx.policyFile, { watchPolicy: extra.watchPolicy });
  const client = new CheckClient(server.address);
  const issuerJwk = JSON.parse(await readFile(fx.policy.keys.issuerPrivateKeyFile, 'utf8')) as JWK & { kid: string; alg: string };
  const key = await importJWK(issuerJwk, issuerJwk.alg);
  return {
    fx,
    server,
    client,
    issuerJwk,
    sign: (payload, header = {}) => new SignJWT(payload).setProtectedHeader({ alg: issuerJwk.alg, kid: issuerJwk.kid, typ: 'JWT', ...header }).sign(key),
    claims: (extra = {}) => {
      const iat = Math.floor(Date.now() / 1000);
      const base: Record<string, unknown> = {
        sub: 'agent-7',
        iss: fx.policy.identity.issuer,
        aud: fx.policy.identity.audiences[0],
        iat,
        nbf: iat,
        exp: iat + 300,
        role: 'RETRIEVER',
        jti: randomUUID(),
        ...extra,
      };
      for (const [k, v] of Object.entries(base)) if (v === undefined) delete base[k];
      return base as JWTPayload;
    },
    close: async () => {
      client.close();
      await server.close();
      await fx.cleanup();
    },
  };
}

export function b64url(v: string | Buffer): string {
  return Buffer.from(v).toString('base64url');
}

/** A compact JWS with `alg: none` (no signature at all). */
export function unsignedToken(payload: JWTPayload): string {
  return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}.`;
}

/** HS256 signed with `secret` (the algorithm-confusion attack uses the issuer's public key). */
export function hmacToken(payload: JWTPayload, secret: string | Buffer, header: Record<string, unknown> = {}): string {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', ...header }))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

export function isAllow(res: CheckResponseView): boolean {
  return res.status.code === 0 && !!res.ok_response;
}

export async function rewrite(file: string, text: string): Promise<void> {
  await writeFile(file, text);
}
