import { createRequire } from 'node:module';
import { PayloadError } from '../../errors.js';
import type { SEALLibrary } from 'node-seal/implementation/seal.js';

export type { SEALLibrary };
export type { CipherText } from 'node-seal/implementation/cipher-text.js';
export type { Context } from 'node-seal/implementation/context.js';
export type { CKKSEncoder } from 'node-seal/implementation/ckks-encoder.js';
export type { Evaluator } from 'node-seal/implementation/evaluator.js';
export type { Encryptor } from 'node-seal/implementation/encryptor.js';
export type { Decryptor } from 'node-seal/implementation/decryptor.js';
export type { PublicKey } from 'node-seal/implementation/public-key.js';
export type { SecretKey } from 'node-seal/implementation/secret-key.js';
export type { RelinKeys } from 'node-seal/implementation/relin-keys.js';
export type { GaloisKeys } from 'node-seal/implementation/galois-keys.js';
export type { PlainText } from 'node-seal/implementation/plain-text.js';

/**
 * node-seal's WebAssembly, loaded on first use and exactly once per process.
 *
 * node-seal 6.0.x has no `exports` map and its `main` is a UMD bundle: loading it through
 * `createRequire` is what works on Node 20 without a bundler (the `_es` builds target browsers). The
 * `throws_` build is used so that SEAL refuses to produce transparent ciphertexts (which would carry
 * plaintext) instead of silently allowing them. 7.x is not an option: it needs WebAssembly GC.
 */
const NODE_SEAL_ENTRY = 'node-seal/throws_wasm_node_umd.js';

let loading: Promise<SEALLibrary> | undefined;
let loads = 0;
let loadMs: number | undefined;

export function loadSeal(): Promise<SEALLibrary> {
  if (!loading) {
    loads += 1;
    const started = performance.now();
    loading = (async () => {
      const factory = createRequire(import.meta.url)(NODE_SEAL_ENTRY) as () => Promise<SEALLibrary>;
      const seal = await factory();
      loadMs = performance.now() - started;
      return seal;
    })();
    // A failed load may be retried later (e.g. after a transient out-of-memory), so forget it.
    loading.catch(() => {
      loading = undefined;
    });
  }
  return loading;
}

const discardListeners: (() => void)[] = [];

/** Called when the instance is discarded, so holders of objects made by it drop them. */
export function onSealDiscarded(fn: () => void): void {
  discardListeners.push(fn);
}

/** An emscripten abort: the instance that threw it is unusable from then on. */
export function isWasmAbort(e: unknown): boolean {
  return e instanceof Error && (e.name === 'RuntimeError' || e.message.startsWith('Aborted('));
}

/**
 * Forgets an instance that aborted (SEAL aborts on some malformed input that passes its own checks),
 * so the next use instantiates a fresh one instead of failing for the rest of the process.
 */
export function discardSeal(): void {
  loading = undefined;
  loadMs = undefined;
  for (const fn of discardListeners) fn();
}

/** Runs SEAL work; an abort discards the instance and becomes a `payload_rejected` for this input. */
export async function guardSeal<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (!isWasmAbort(e)) throw e;
    discardSeal();
    throw new PayloadError('payload_rejected', 'the FHE engine aborted on this input and was reset', { cause: e });
  }
}

/** Whether the WASM has been requested in this process (for lazy-loading checks and Status). */
export function isSealLoaded(): boolean {
  return loading !== undefined;
}

/** How many times loading started (1 after first use; more only after a failed load or an abort). */
export function sealLoadCount(): number {
  return loads;
}

/** Milliseconds the WASM took to compile and instantiate, once loaded. */
export function sealLoadMillis(): number | undefined {
  return loadMs;
}
