import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { CompiledPolicy, DomainPolicy } from '../../config/types.js';
import { ATTESTATION_MEMBER, KEY_ALG } from './recipients.js';

/**
 * Development keys for `mesh-pep keys init`. In production the enclave or party creates its own key
 * pair and publishes only the public JWK; these helpers play that role on one machine so the
 * examples in docs/computation.md run end to end.
 */
async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

async function writeNew(file: string, doc: unknown, mode: number): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // `wx`: never overwrite a key another process (or operator) put there meanwhile.
  await writeFile(file, `${JSON.stringify(doc, null, 2)}\n`, { mode, flag: 'wx' });
}

/** A new ECDH key pair as JWKs (kid = RFC 7638 thumbprint of the public key). */
export async function generateRecipientJwks(crv: 'P-256' | 'X25519' = 'P-256'): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(KEY_ALG, { crv, extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  const meta = { kid, alg: KEY_ALG, use: 'enc' };
  return { privateJwk: { ...(await exportJWK(privateKey)), ...meta }, publicJwk: { ...pub, ...meta } };
}

function publicOf(jwk: JWK): JWK {
  const { d: _d, ...pub } = jwk;
  return pub;
}

/**
 * Writes a recipient JWK Set with one public key; the private half goes to `privateFile` (0600). If a
 * private key file is already there (the public set was deleted), its public half is republished
 * rather than a new key silently replacing it.
 */
async function ensureRecipient(publicFile: string, privateFile: string, extra: Record<string, string>): Promise<string[]> {
  if (await exists(publicFile)) return [];
  const written: string[] = [];
  let privateJwk: JWK;
  if (await exists(privateFile)) {
    privateJwk = JSON.parse(await readFile(privateFile, 'utf8')) as JWK;
  } else {
    ({ privateJwk } = await generateRecipientJwks('P-256'));
    await writeNew(privateFile, privateJwk, 0o600);
    written.push(privateFile);
  }
  await writeNew(publicFile, { keys: [{ ...publicOf(privateJwk), ...extra }] }, 0o644);
  written.push(publicFile);
  return written;
}

/** The domain's oct keyring (A256KW) that enclaves seal responses back to. */
async function ensureDomainKeyring(domain: DomainPolicy): Promise<string[]> {
  if (await exists(domain.keyringFile)) return [];
  const kid = `${domain.name}-${randomBytes(6).toString('hex')}`;
  const key = { kty: 'oct', kid, alg: 'A256KW', use: 'enc', k: randomBytes(32).toString('base64url') };
  await writeNew(domain.keyringFile, { keys: [key] }, 0o600);
  return [domain.keyringFile];
}

export function enclavePrivateKeyFile(policy: CompiledPolicy, domain: DomainPolicy): string {
  return join(policy.keys.dir, `${domain.name}.enclave.private.jwk.json`);
}

export function partyPrivateKeyFile(jwksFile: string, partyName: string): string {
  // The name becomes part of a file name: refuse anything that could leave the folder.
  if (!/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,62}$/.test(partyName)) throw new TypeError(`party name "${partyName}" cannot name a key file`);
  return join(dirname(jwksFile), `${partyName}.private.jwk.json`);
}

export async function ensureDevKeys(policy: CompiledPolicy, domain: DomainPolicy): Promise<string[]> {
  const written = await ensureDomainKeyring(domain);
  const settings = domain.computation;
  if (!settings) return written;
  if (settings.mode === 'tee') {
    // Dev enclave keys carry the first trusted measurement; with none trusted, a key could never be
    // used, so none is made (the domain then answers attestation_failed until one is configured).
    const measurement = policy.trustedMeasurements.values().next().value;
    if (settings.recipientsFile && measurement !== undefined) {
      written.push(...(await ensureRecipient(settings.recipientsFile, enclavePrivateKeyFile(policy, domain), { [ATTESTATION_MEMBER]: measurement })));
    }
  } else {
    for (const party of settings.parties) {
      written.push(...(await ensureRecipient(party.jwksFile, partyPrivateKeyFile(party.jwksFile, party.name), {})));
    }
  }
  return written;
}

/** Default private key files for `mesh-pep open` when no `--key` is given (dev setups). */
export function defaultOperatorKeyFiles(policy: CompiledPolicy, domain: DomainPolicy): string[] {
  const settings = domain.computation;
  if (!settings) return [];
  if (settings.mode === 'tee') return [enclavePrivateKeyFile(policy, domain)];
  return settings.parties.map((p) => partyPrivateKeyFile(p.jwksFile, p.name));
}
