import { stat } from 'node:fs/promises';
import { PayloadError } from '../../errors.js';
import { parseFieldPath, type PathSegment } from '../json-path.js';
import { loadKeyring } from '../keyring.js';
import type { PayloadResult } from '../tier-handler.js';
import { fheKeyFiles, loadFheKeys } from './keys.js';
import { guardSeal } from './seal.js';
import { holdsProtected, openJson, protectJson, type Json } from './transform.js';

export const PROTECTED_HEADER = 'x-mesh-protected';
const JSON_TYPE = 'application/json';

/**
 * One FHE body transformation, as plain data so it can cross to the SEAL thread (`pool.ts`): the
 * domain's key locations and limits instead of the compiled policy objects.
 */
export interface FheJob {
  op: 'protect' | 'unprotect';
  body: Uint8Array;
  contentType: string | undefined;
  keysDir: string;
  domain: string;
  keyringFile: string;
  /** `fhe.paths` as written in the policy; compiled (once per thread and list) here. */
  paths: readonly string[];
  maxLength: number;
  maxCiphertexts: number;
  maxOutputBytes: number;
}

export function isJsonType(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const base = contentType.split(';')[0]!.trim().toLowerCase();
  return base === JSON_TYPE || base.endsWith('+json');
}

const decoder = new TextDecoder('utf-8', { fatal: true });

export function parseJsonBody(body: Uint8Array): Json | undefined {
  try {
    return JSON.parse(decoder.decode(body)) as Json;
  } catch {
    return undefined;
  }
}

const compiled = new Map<string, PathSegment[][]>();

function compilePaths(domain: string, paths: readonly string[]): PathSegment[][] {
  const key = JSON.stringify(paths);
  let out = compiled.get(key);
  if (!out) {
    try {
      out = paths.map((p) => parseFieldPath(p));
    } catch (cause) {
      throw new PayloadError('payload_rejected', `domain ${domain} has an invalid fhe path`, { cause });
    }
    if (compiled.size > 256) compiled.clear();
    compiled.set(key, out);
  }
  return out;
}

function jsonResult(doc: Json, headers: Record<string, string>, maxOutputBytes: number | undefined): PayloadResult {
  const body = new TextEncoder().encode(JSON.stringify(doc));
  // Sealed strings and passed-through `$fhe` values count too: the whole answer is what Envoy buffers.
  if (maxOutputBytes !== undefined && body.length > maxOutputBytes) {
    throw new PayloadError('payload_too_large', `protected body of ${body.length} bytes passes the domain's max_output_bytes ${maxOutputBytes}`);
  }
  return { body, contentType: JSON_TYPE, headers };
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

async function protectBody(job: FheJob): Promise<PayloadResult> {
  const { body } = job;
  if (body.length === 0) return { body, contentType: job.contentType ?? JSON_TYPE, headers: {} };
  if (!isJsonType(job.contentType)) throw new PayloadError('payload_rejected', 'FHE domains accept JSON bodies only');
  const doc = parseJsonBody(body);
  if (doc === undefined) throw new PayloadError('payload_rejected', 'body is not JSON');
  const paths = compilePaths(job.domain, job.paths);
  const [fhe, ring] = await Promise.all([loadFheKeys(job.keysDir, job.domain), loadKeyring(job.keyringFile)]);
  const out = await protectJson(doc, {
    fhe,
    ring,
    domain: job.domain,
    paths,
    maxLength: job.maxLength,
    maxCiphertexts: job.maxCiphertexts,
    maxOutputBytes: job.maxOutputBytes,
  });
  return jsonResult(out, { [PROTECTED_HEADER]: 'FHE' }, job.maxOutputBytes);
}

async function unprotectBody(job: FheJob): Promise<PayloadResult | undefined> {
  const { body } = job;
  if (body.length === 0 || !isJsonType(job.contentType)) return undefined;
  const doc = parseJsonBody(body);
  if (doc === undefined || !holdsProtected(doc, job.domain)) return undefined;
  if (!(await fileExists(fheKeyFiles(job.keysDir, job.domain).secret))) return undefined;
  const [fhe, ring] = await Promise.all([loadFheKeys(job.keysDir, job.domain), loadKeyring(job.keyringFile)]);
  // Opening shrinks ciphertexts back to numbers: the output is bounded by the input, not by this limit.
  return jsonResult(await openJson(doc, fhe, [ring], job.domain, job.maxLength), {}, undefined);
}

/** Runs a job in this thread (the SEAL thread, or a process that has no pool). */
export function runFheJob(job: FheJob): Promise<PayloadResult | undefined> {
  return guardSeal(() => (job.op === 'protect' ? protectBody(job) : unprotectBody(job)));
}
