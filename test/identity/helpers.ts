import { KeyObject, sign as cryptoSign, type webcrypto } from 'node:crypto';
import { mkdtemp, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import type { IdentitySettings } from '../../src/config/types.js';

export const ISSUER = 'https://issuer.test';
export const AUDIENCE = 'agent-mesh';

export function settings(overrides: Partial<IdentitySettings> = {}): IdentitySettings {
  return {
    issuer: ISSUER,
    audiences: [AUDIENCE],
    jwksFile: undefined,
    jwksUri: undefined,
    roleClaim: 'role',
    attestationClaim: 'attestation_hash',
    spiffeClaim: 'spiffe_id',
    clockSkewMs: 30_000,
    algorithms: [],
    ...overrides,
  };
}

export interface TestKey {
  alg: string;
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** Public JWK as an issuer would publish it. */
  jwk: JWK;
}

/** A fresh key pair, minted at run time. */
export async function newKey(alg = 'ES256', kid?: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const pub = await exportJWK(publicKey);
  const id = kid ?? (await calculateJwkThumbprint(pub));
  return { alg, kid: id, privateKey, publicKey, jwk: { ...pub, kid: id, alg, use: 'sig' } };
}

export function jwks(...keys: TestKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => k.jwk) };
}

/** Standard valid claims at `nowMs`, overridable (undefined removes a claim). */
export function claims(nowMs: number, extra: Record<string, unknown> = {}): JWTPayload {
  const iat = Math.floor(nowMs / 1000);
  const base: Record<string, unknown> = {
    sub: 'agent-1',
    iss: ISSUER,
    aud: AUDIENCE,
    iat,
    nbf: iat,
    exp: iat + 300,
    role: 'RETRIEVER',
    jti: `jti-${Math.random().toString(36).slice(2)}`,
    ...extra,
  };
  for (const k of Object.keys(base)) if (base[k] === undefined) delete base[k];
  return base as JWTPayload;
}

export async function sign(
  key: TestKey,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header })
    .sign(key.privateKey);
}

/** Signs without jose's header checks (crit, odd kids), as an attacker or a buggy issuer could. */
export async function signRaw(key: TestKey, header: Record<string, unknown>, payload: unknown): Promise<string> {
  if (key.alg !== 'ES256') throw new TypeError('signRaw supports ES256 test keys only');
  const input = `${b64url(header)}.${b64url(payload)}`;
  const sig = cryptoSign('sha256', Buffer.from(input), {
    key: KeyObject.from(key.privateKey as unknown as webcrypto.CryptoKey),
    dsaEncoding: 'ieee-p1363',
  });
  return `${input}.${sig.toString('base64url')}`;
}

export function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-pep-identity-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

let bump = 0;
/** Replaces a file the way rotation tools should (write + rename) and moves its mtime forward. */
export async function replaceFile(path: string, content: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, content);
  await rename(tmp, path);
  bump += 10;
  const t = new Date(Date.now() + bump * 1000);
  await utimes(path, t, t);
}

/** A loopback HTTP server with a swappable handler and a request counter. */
export interface TestServer {
  url: string;
  requests: number;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

export async function startServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<TestServer> {
  const state = { requests: 0, handler };
  const server: Server = createServer((req, res) => {
    state.requests++;
    state.handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    set requests(n: number) {
      state.requests = n;
    },
    get handler() {
      return state.handler;
    },
    set handler(h) {
      state.handler = h;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function serveJson(body: unknown): (req: IncomingMessage, res: ServerResponse) => void {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
}
