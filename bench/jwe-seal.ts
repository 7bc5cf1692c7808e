import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';

/**
 * `node dist/bench/jwe-seal.js`: what sealing a RETRIEVAL body costs with jose's CompactEncrypt (WebCrypto:
 * each AES-GCM / AES-KW step is an async job on libuv's thread pool) against the same compact JWE built
 * with synchronous node:crypto (A256KW = `id-aes256-wrap`, A256GCM). Output of the second is checked to
 * open with jose, so the two are interchangeable on the wire. Evidence for the ext_proc owners: the
 * seal is most of what ext_proc RETRIEVAL adds per body.
 */
const kek = randomBytes(32);
const key = createSecretKey(kek);
const header = { alg: 'A256KW', enc: 'A256GCM', kid: 'k1', mesh_domain: 'bench_plain', cty: 'application/json' };
const AES_KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

function sealSync(plaintext: Buffer): string {
  const protectedHeader = Buffer.from(JSON.stringify(header)).toString('base64url');
  const cek = randomBytes(32);
  const wrap = createCipheriv('id-aes256-wrap', kek, AES_KW_IV);
  const encryptedKey = Buffer.concat([wrap.update(cek), wrap.final()]);
  const iv = randomBytes(12);
  const gcm = createCipheriv('aes-256-gcm', cek, iv);
  gcm.setAAD(Buffer.from(protectedHeader, 'ascii'));
  const ciphertext = Buffer.concat([gcm.update(plaintext), gcm.final()]);
  return [protectedHeader, encryptedKey.toString('base64url'), iv.toString('base64url'), ciphertext.toString('base64url'), gcm.getAuthTag().toString('base64url')].join('.');
}

async function best(fn: () => Promise<unknown>, n: number): Promise<number> {
  let min = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await fn();
    min = Math.min(min, (performance.now() - t0) / n);
  }
  return min * 1000;
}

async function main(): Promise<void> {
  for (const size of [4096, 65536]) {
    const plaintext = randomBytes(size);
    const opened = await compactDecrypt(sealSync(plaintext), key);
    if (!Buffer.from(opened.plaintext).equals(plaintext)) throw new Error('node:crypto JWE did not open with jose');
    const jose = await best(() => new CompactEncrypt(plaintext).setProtectedHeader(header).encrypt(key), 300);
    const sync = await best(async () => sealSync(plaintext), 300);
    const mbs = (us: number) => ((size / us) * 1e6) / 1e6;
    process.stdout.write(
      `${String(size / 1024).padStart(3)} KiB  jose CompactEncrypt ${jose.toFixed(1).padStart(7)} µs (${mbs(jose).toFixed(0)} MB/s)   node:crypto sync ${sync.toFixed(1).padStart(6)} µs (${mbs(sync).toFixed(0)} MB/s)\n`,
    );
  }
}

void main();
