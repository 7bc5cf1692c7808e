import type { CompiledPolicy } from '../config/types.js';
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';

/**
 * Development credentials: an ES256 issuer whose private key lives in a local file. For `npm start`,
 * `mesh-pep keys init` and `mesh-pep token`; production issuers are external and only their public
 * JWKS (file or URI) is configured.
 */

interface PublicJwk {
  kty: string;
  crv: string;
  x: string;
  y: string;
  kid: string;
  alg: 'ES256';
  use: 'sig';
}

/**
 * Creates the development issuer when it is missing, and never modifies an existing file:
 * - neither file: a new ES256 pair, both files written;
 * - private key but no JWKS: the JWKS is derived from the private key;
 * - JWKS but no private key: nothing. The JWKS may well be a real issuer's key set, and adding a key
 *   made on this host to it would let this host mint credentials the mesh trusts.
 * Returns the paths written.
 */
export async function ensureDevIssuer(opts: { jwksFile: string; privateKeyFile: string }): Promise<string[]> {
  const existingPrivate = await readIfExists(opts.privateKeyFile);
  const existingJwks = await readIfExists(opts.jwksFile);
  if (existingJwks !== undefined) return [];

  const written: string[] = [];
  let pub: PublicJwk;
  if (existingPrivate !== undefined) {
    pub = publicOf(parsePrivate(existingPrivate, opts.privateKeyFile), opts.privateKeyFile);
  } else {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const pubJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(pubJwk);
    const privJwk = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
    pub = publicOf(privJwk, opts.privateKeyFile);
    await writeAtomic(opts.privateKeyFile, `${JSON.stringify(privJwk, null, 2)}\n`, 0o600);
    written.push(opts.privateKeyFile);
  }
  await writeAtomic(opts.jwksFile, `${JSON.stringify({ keys: [pub] }, null, 2)}\n`, 0o644);
  written.push(opts.jwksFile);
  return written;
}

export async function mintDevToken(opts: {
  privateKeyFile: string;
  issuer?: string;
  audience?: string | string[];
  agentId: string;
  role: string;
  ttlMs: number;
  attestation?: string;
  spiffeId?: string;
  /** Claim names from the identity settings (role_claim, attestation_claim, spiffe_claim). */
  claims: { role: string; attestation: string; spiffe: string };
  /** ms epoch, for tests. */
  now?: number;
}): Promise<string> {
  if (typeof opts.agentId !== 'string' || opts.agentId.length === 0) throw new TypeError('agentId must be a non-empty string');
  if (!Number.isFinite(opts.ttlMs) || opts.ttlMs <= 0) throw new TypeError('ttlMs must be a positive number');
  const text = await readIfExists(opts.privateKeyFile);
  if (text === undefined) {
    throw new Error(
      `dev issuer private key ${opts.privateKeyFile} not found: run \`mesh-pep keys init\` (it creates one only ` +
        'when the issuer JWKS file does not exist yet; with an external issuer, get credentials from that issuer)',
    );
  }
  const jwk = parsePrivate(text, opts.privateKeyFile);
  const key = await importJWK(jwk, 'ES256');
  const nowMs = opts.now ?? Date.now();
  const iat = Math.floor(nowMs / 1000);
  const claims: Record<string, unknown> = { [opts.claims.role]: opts.role };
  if (opts.attestation !== undefined) claims[opts.claims.attestation] = opts.attestation;
  if (opts.spiffeId !== undefined) claims[opts.claims.spiffe] = opts.spiffeId;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid, typ: 'JWT' })
    .setSubject(opts.agentId)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(Math.floor((nowMs + opts.ttlMs) / 1000))
    .setJti(randomUUID());
  if (opts.issuer !== undefined) jwt.setIssuer(opts.issuer);
  if (opts.audience !== undefined) jwt.setAudience(opts.audience);
  return jwt.sign(key);
}

function parsePrivate(text: string, path: string): JWK & { kid: string } {
  const jwk = safeJson(text) as JWK | undefined;
  if (
    typeof jwk !== 'object' || jwk === null || jwk.kty !== 'EC' || jwk.crv !== 'P-256' ||
    typeof jwk.d !== 'string' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string'
  ) {
    throw new Error(`${path} is not an EC P-256 private JWK`);
  }
  if (typeof jwk.kid !== 'string' || jwk.kid.length === 0) throw new Error(`${path} has no "kid"`);
  return jwk as JWK & { kid: string };
}

function publicOf(jwk: JWK, path: string): PublicJwk {
  if (typeof jwk.kid !== 'string' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new Error(`${path} is not an EC P-256 private JWK`);
  }
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, kid: jwk.kid, alg: 'ES256', use: 'sig' };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Write-then-rename, so a JWKS file watcher never sees a half-written file. */
async function writeAtomic(path: string, content: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(tmp, content, { mode, flag: 'wx' });
  // writeFile's mode is filtered by the umask; the private key must end up 0600 whatever it is.
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/**
 * A development credential for a loaded policy: its dev issuer key, issuer, first audience and claim
 * names. What `mesh-pep token`, the demo and the tests mint.
 */
export function mintPolicyToken(
  policy: CompiledPolicy,
  opts: { agentId: string; role: string; ttlMs: number; attestation?: string; spiffeId?: string; now?: number },
): Promise<string> {
  return mintDevToken({
    privateKeyFile: policy.keys.issuerPrivateKeyFile,
    issuer: policy.identity.issuer,
    audience: policy.identity.audiences[0],
    claims: { role: policy.identity.roleClaim, attestation: policy.identity.attestationClaim, spiffe: policy.identity.spiffeClaim },
    ...opts,
  });
}
