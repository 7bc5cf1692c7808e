import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import { PayloadError } from '../../errors.js';
import { KEY_ALG } from './recipients.js';

/**
 * Private recipient keys as an enclave, a party or an operator holds them: a file with one private
 * JWK, or a JWK Set of them (EC P-256 or OKP X25519 with `d`). Used only on the opening side
 * (`mesh-pep open`, tests, a party's own tooling); the serving path never loads one.
 */
export interface PrivateKey {
  kid: string;
  jwk: JWK;
  key: Awaited<ReturnType<typeof importJWK>>;
}

function publicPart(jwk: JWK): JWK {
  return jwk.kty === 'EC' ? { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
}

export async function importPrivateJwk(jwk: JWK, origin = 'private key'): Promise<PrivateKey> {
  const ok = (jwk.kty === 'EC' && jwk.crv === 'P-256') || (jwk.kty === 'OKP' && jwk.crv === 'X25519');
  if (!ok || typeof jwk.d !== 'string') throw new PayloadError('payload_rejected', `${origin} is not an EC P-256 or OKP X25519 private JWK`);
  let key;
  try {
    key = await importJWK(jwk, KEY_ALG);
  } catch (cause) {
    throw new PayloadError('payload_rejected', `${origin} cannot be imported`, { cause });
  }
  const kid = typeof jwk.kid === 'string' && jwk.kid.length > 0 ? jwk.kid : await calculateJwkThumbprint(publicPart(jwk));
  return { kid, jwk, key };
}

export async function loadPrivateKeyFile(file: string): Promise<PrivateKey[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new PayloadError('payload_rejected', `key file ${file} is missing or unreadable`, { cause });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new PayloadError('payload_rejected', `key file ${file} is not JSON`);
  }
  const list = doc && typeof doc === 'object' && Array.isArray((doc as { keys?: unknown }).keys) ? (doc as { keys: unknown[] }).keys : [doc];
  const out: PrivateKey[] = [];
  for (const raw of list) {
    if (!raw || typeof raw !== 'object') throw new PayloadError('payload_rejected', `key file ${file} holds a non-object key`);
    out.push(await importPrivateJwk(raw as JWK, `a key in ${file}`));
  }
  return out;
}

export async function loadPrivateKeyFiles(files: readonly string[]): Promise<PrivateKey[]> {
  const all: PrivateKey[] = [];
  for (const f of files) all.push(...(await loadPrivateKeyFile(f)));
  return all;
}
