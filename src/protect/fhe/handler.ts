import { stat } from 'node:fs/promises';
import type { DomainPolicy } from '../../config/types.js';
import { PayloadError } from '../../errors.js';
import { parseFieldPath, type PathSegment } from '../json-path.js';
import { loadKeyring } from '../keyring.js';
import type { PayloadContext, PayloadResult, TierHandler } from '../tier-handler.js';
import { fheKeyFiles, loadFheKeys } from './keys.js';
import { guardSeal } from './seal.js';
import { holdsProtected, openJson, protectJson, type Json } from './transform.js';

export const PROTECTED_HEADER = 'x-mesh-protected';
const JSON_TYPE = 'application/json';
const DEFAULT_MAX_LENGTH = 65_536;

const compiledPaths = new WeakMap<DomainPolicy, PathSegment[][]>();

/** `fhe.paths` compiled once per loaded policy (domain objects are replaced on reload). */
export function pathsOf(domain: DomainPolicy): PathSegment[][] {
  let paths = compiledPaths.get(domain);
  if (!paths) {
    try {
      paths = (domain.fhe?.paths ?? []).map((p) => parseFieldPath(p));
    } catch (cause) {
      throw new PayloadError('payload_rejected', `domain ${domain.name} has an invalid fhe path`, { cause });
    }
    compiledPaths.set(domain, paths);
  }
  return paths;
}

export function maxLengthOf(domain: DomainPolicy): number {
  return domain.fhe?.maxLength ?? DEFAULT_MAX_LENGTH;
}

function isJsonType(contentType: string | undefined): boolean {
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

function jsonResult(doc: Json, headers: Record<string, string>): PayloadResult {
  return { body: new TextEncoder().encode(JSON.stringify(doc)), contentType: JSON_TYPE, headers };
}

/**
 * FHE tier (contract section 5). `protect` encrypts numbers under the domain's CKKS key, in the
 * smallest form the keys present allow (seeded symmetric with the secret key, public-key otherwise),
 * and seals every other value with the domain's oct keyring. `unprotect` opens bodies only where the
 * domain's secret key file is present (the key owner's side); elsewhere it returns `undefined`, so
 * ciphertext passes on untouched. Non-JSON bodies are rejected: there is nothing to compute on, and
 * passing them would forward plaintext.
 */
export class FheHandler implements TierHandler {
  readonly tier = 'FHE' as const;

  protect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult> {
    return guardSeal(() => this.protectBody(body, ctx));
  }

  unprotect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult | undefined> {
    return guardSeal(() => this.unprotectBody(body, ctx));
  }

  private async protectBody(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult> {
    if (body.length === 0) return { body, contentType: ctx.contentType ?? JSON_TYPE, headers: {} };
    if (!isJsonType(ctx.contentType)) throw new PayloadError('payload_rejected', 'FHE domains accept JSON bodies only');
    const doc = parseJsonBody(body);
    if (doc === undefined) throw new PayloadError('payload_rejected', 'body is not JSON');
    const { policy, domain } = ctx;
    const [fhe, ring] = await Promise.all([loadFheKeys(policy.keys.dir, domain.name), loadKeyring(domain.keyringFile)]);
    const out = await protectJson(doc, { fhe, ring, domain: domain.name, paths: pathsOf(domain), maxLength: maxLengthOf(domain) });
    return jsonResult(out, { [PROTECTED_HEADER]: 'FHE' });
  }

  private async unprotectBody(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult | undefined> {
    if (body.length === 0 || !isJsonType(ctx.contentType)) return undefined;
    const doc = parseJsonBody(body);
    if (doc === undefined || !holdsProtected(doc, ctx.domain.name)) return undefined;
    const { policy, domain } = ctx;
    if (!(await fileExists(fheKeyFiles(policy.keys.dir, domain.name).secret))) return undefined;
    const [fhe, ring] = await Promise.all([loadFheKeys(policy.keys.dir, domain.name), loadKeyring(domain.keyringFile)]);
    return jsonResult(await openJson(doc, fhe, [ring], domain.name, maxLengthOf(domain)), {});
  }
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
