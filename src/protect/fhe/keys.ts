import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PayloadError } from '../../errors.js';
import { CKKS, SCALE, sealContext, paramsFileFor, parseParamsFile } from './params.js';
import {
  isWasmAbort,
  loadSeal,
  onSealDiscarded,
  type CipherText,
  type CKKSEncoder,
  type Context,
  type Decryptor,
  type Encryptor,
  type Evaluator,
  type GaloisKeys,
  type PlainText,
  type PublicKey,
  type RelinKeys,
  type SEALLibrary,
  type SecretKey,
} from './seal.js';

/**
 * A domain's CKKS key files under `keys.dir`. Only the params file and the public key must exist
 * everywhere; the secret key lives only where decryption happens (the key owner), and the relin and
 * Galois keys only where analysts compute. All `.seal` files are SEAL's own serialisation, zstd
 * compressed, with the pseudo-random half of public/relin/Galois keys replaced by a seed.
 */
export interface FheKeyFiles {
  params: string;
  public: string;
  secret: string;
  relin: string;
  galois: string;
}

export function fheKeyFiles(dir: string, domain: string): FheKeyFiles {
  const base = path.join(dir, `${domain}.fhe`);
  return {
    params: `${base}.params.json`,
    public: `${base}.public.seal`,
    secret: `${base}.secret.seal`,
    relin: `${base}.relin.seal`,
    galois: `${base}.galois.seal`,
  };
}

/** The key id names the key pair: a digest of the public key file, so mismatched files are caught. */
export function keyIdFor(publicKeyFile: Uint8Array): string {
  return `ckks-${createHash('sha256').update(publicKeyFile).digest('hex').slice(0, 16)}`;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

async function writeAtomic(file: string, data: Uint8Array | string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, data, { mode, flag: 'wx' });
  await chmod(tmp, mode);
  await rename(tmp, file);
}

/**
 * Generates a fresh key set when the domain has none. The params file is written last, so a run cut
 * short leaves no params file and is recognisable as partial. Never overwrites: existing key material
 * that lacks its params file is an operator problem to resolve, not something to silently replace.
 */
export async function generateFheKeys(dir: string, domain: string): Promise<string[]> {
  const files = fheKeyFiles(dir, domain);
  if (await exists(files.params)) return [];
  const stray = [];
  for (const f of [files.public, files.secret, files.relin, files.galois]) if (await exists(f)) stray.push(f);
  if (stray.length > 0) {
    throw new Error(`FHE key files exist without ${files.params}: ${stray.join(', ')}; move them away or restore the params file`);
  }
  const seal = await loadSeal();
  const context = sealContext(seal);
  const zstd = seal.ComprModeType.zstd;
  const keygen = seal.KeyGenerator(context);
  const secret = keygen.secretKey();
  const pub = keygen.createPublicKeySerializable();
  const relin = keygen.createRelinKeysSerializable();
  const galois = keygen.createGaloisKeysSerializable(Int32Array.from(CKKS.galoisSteps));
  try {
    const pubBytes = pub.saveArray(zstd);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomic(files.secret, secret.saveArray(zstd), 0o600);
    await writeAtomic(files.public, pubBytes, 0o644);
    await writeAtomic(files.relin, relin.saveArray(zstd), 0o644);
    await writeAtomic(files.galois, galois.saveArray(zstd), 0o644);
    await writeAtomic(files.params, `${JSON.stringify(paramsFileFor(keyIdFor(pubBytes)), null, 2)}\n`, 0o644);
  } finally {
    for (const o of [pub, relin, galois, secret, keygen]) o.delete();
  }
  return [files.secret, files.public, files.relin, files.galois, files.params];
}

/** Reads the key id without loading the WASM; undefined when the domain has no FHE keys. */
export async function readKeyId(dir: string, domain: string): Promise<string | undefined> {
  const file = fheKeyFiles(dir, domain).params;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return parseParamsFile(file, text).key_id;
}

/** Which encryption a key set performs: seeded symmetric when it holds the secret key (half the bytes). */
export type EncryptionMode = 'seeded-symmetric' | 'public-key';

/**
 * Loaded key material with the SEAL objects built on it. Objects are created once per key set and
 * reused: SEAL calls are synchronous, so no two requests ever use them at the same moment.
 */
export interface FheKeySet {
  readonly keyId: string;
  readonly seal: SEALLibrary;
  readonly context: Context;
  readonly encoder: CKKSEncoder;
  readonly evaluator: Evaluator;
  readonly publicKey: PublicKey;
  readonly secretKey: SecretKey | undefined;
  readonly encryptor: Encryptor;
  readonly decryptor: Decryptor | undefined;
  readonly mode: EncryptionMode;
  /** Relinearisation and Galois keys load on first use: only analysts need them, and Galois keys are large. */
  relinKeys(): Promise<RelinKeys>;
  galoisKeys(): Promise<GaloisKeys>;
}

export interface LoadOptions {
  /**
   * `auto`: use the domain's secret key file when it exists; `none`: never read it (analysts);
   * a path: this secret key file (operators opening with `--key`).
   */
  secret: 'auto' | 'none' | { file: string };
}

async function readOptional(file: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** An abort is passed on as it is, so that `guardSeal` discards the instance. */
function loadFailure(what: string, file: string, cause: unknown): Error {
  if (isWasmAbort(cause)) return cause as Error;
  return new PayloadError('payload_rejected', `cannot load FHE ${what} ${file}`, { cause });
}

async function buildKeySet(dir: string, domain: string, opts: LoadOptions): Promise<FheKeySet> {
  const files = fheKeyFiles(dir, domain);
  const paramsText = await readOptional(files.params);
  if (!paramsText) throw new PayloadError('payload_rejected', `domain ${domain} has no FHE keys (${files.params} is missing; run mesh-pep keys init)`);
  const params = parseParamsFile(files.params, Buffer.from(paramsText).toString('utf8'));
  const secretFile = opts.secret === 'none' ? undefined : opts.secret === 'auto' ? files.secret : opts.secret.file;
  const secretBytes = secretFile ? await readOptional(secretFile) : undefined;
  if (secretFile && !secretBytes && opts.secret !== 'auto') throw new PayloadError('payload_rejected', `FHE secret key ${secretFile} is missing`);
  const publicBytes = await readOptional(files.public);
  if (publicBytes && keyIdFor(publicBytes) !== params.key_id) {
    throw new PayloadError('payload_rejected', `FHE public key ${files.public} does not match key id ${params.key_id} in ${files.params}`);
  }
  if (!publicBytes && !secretBytes) throw new PayloadError('payload_rejected', `domain ${domain} has no FHE public key (${files.public})`);

  const seal = await loadSeal();
  const context = sealContext(seal);
  let secretKey: SecretKey | undefined;
  if (secretBytes) {
    secretKey = seal.SecretKey();
    try {
      secretKey.loadArray(context, secretBytes);
    } catch (cause) {
      throw loadFailure('secret key', secretFile!, cause);
    }
  }
  let publicKey: PublicKey;
  if (publicBytes) {
    publicKey = seal.PublicKey();
    try {
      publicKey.loadArray(context, publicBytes);
    } catch (cause) {
      throw loadFailure('public key', files.public, cause);
    }
  } else {
    // The owner may keep only the secret key; SEAL's Encryptor still wants a public key object.
    const keygen = seal.KeyGenerator(context, secretKey);
    publicKey = keygen.createPublicKey();
    keygen.delete();
  }
  if (secretKey && publicBytes) assertKeyPair(seal, context, publicKey, secretKey, secretFile!);
  const lazyFile = <T extends { loadArray(c: Context, a: Uint8Array): void }>(file: string, what: string, make: () => T): (() => Promise<T>) => {
    let p: Promise<T> | undefined;
    return () => {
      p ??= (async () => {
        const bytes = await readOptional(file);
        if (!bytes) throw new PayloadError('payload_rejected', `FHE ${what} ${file} is missing (needed for this operation)`);
        const key = make();
        try {
          key.loadArray(context, bytes);
        } catch (cause) {
          throw loadFailure(what, file, cause);
        }
        return key;
      })();
      p.catch(() => (p = undefined));
      return p;
    };
  };
  return {
    keyId: params.key_id,
    seal,
    context,
    encoder: seal.CKKSEncoder(context),
    evaluator: seal.Evaluator(context),
    publicKey,
    secretKey,
    encryptor: seal.Encryptor(context, publicKey, secretKey),
    decryptor: secretKey ? seal.Decryptor(context, secretKey) : undefined,
    mode: secretKey ? 'seeded-symmetric' : 'public-key',
    relinKeys: lazyFile(files.relin, 'relinearisation keys', () => seal.RelinKeys()),
    galoisKeys: lazyFile(files.galois, 'Galois keys', () => seal.GaloisKeys()),
  };
}

/**
 * A secret key from another key generation would decrypt everything encrypted with the public key to
 * noise; catch that at load time by a public-key encryption of a known value that must decrypt back.
 */
function assertKeyPair(seal: SEALLibrary, context: Context, publicKey: PublicKey, secretKey: SecretKey, secretFile: string): void {
  const encoder = seal.CKKSEncoder(context);
  const encryptor = seal.Encryptor(context, publicKey);
  const decryptor = seal.Decryptor(context, secretKey);
  const probe = 0.5;
  const plain = encoder.encode(Float64Array.from([probe]), SCALE) as PlainText;
  const ct = encryptor.encrypt(plain) as CipherText;
  const back = decryptor.decrypt(ct) as PlainText;
  const value = (encoder.decode(back) as Float64Array)[0]!;
  for (const o of [back, ct, plain, decryptor, encryptor, encoder]) o.delete();
  if (!(Math.abs(value - probe) < 1e-6)) {
    throw new PayloadError('payload_rejected', `FHE secret key ${secretFile} does not belong to the domain's public key`);
  }
}

async function mtimeOrMissing(file: string): Promise<string> {
  try {
    return String((await stat(file)).mtimeMs);
  } catch {
    return '-';
  }
}

/**
 * Loaded key sets, re-read when a key file changes (checked at most once a second). Replaced SEAL
 * objects are not deleted: a request that started before the change may still hold them, and key
 * changes are rare enough that the memory does not matter.
 */
const cache = new Map<string, { checkedAt: number; stamp: string; set: Promise<FheKeySet> }>();
onSealDiscarded(() => cache.clear());

export async function loadFheKeys(dir: string, domain: string, opts: LoadOptions = { secret: 'auto' }): Promise<FheKeySet> {
  const files = fheKeyFiles(dir, domain);
  const secretFile = opts.secret === 'none' ? undefined : opts.secret === 'auto' ? files.secret : opts.secret.file;
  const id = [path.resolve(dir), domain, secretFile ?? ''].join('\0');
  const now = Date.now();
  const hit = cache.get(id);
  if (hit && now - hit.checkedAt < 1000) return hit.set;
  const stamp = (await Promise.all([files.params, files.public, secretFile ?? ''].map((f) => (f ? mtimeOrMissing(f) : '')))).join('/');
  if (hit && hit.stamp === stamp) {
    hit.checkedAt = now;
    return hit.set;
  }
  const set = buildKeySet(dir, domain, opts);
  cache.set(id, { checkedAt: now, stamp, set });
  set.catch(() => cache.delete(id));
  return set;
}
