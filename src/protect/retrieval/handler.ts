import type { Tier } from '../../config/types.js';
import { PayloadError } from '../../errors.js';
import { looksLikeCompactJwe, openForDomain, sealForDomainBytes } from '../jwe.js';
import { loadKeyring, type Keyring } from '../keyring.js';
import type { PayloadContext, PayloadResult, TierHandler } from '../tier-handler.js';

export const PROTECTED_CONTENT_TYPE = 'application/jose';
/** What a restored body is labelled when it was sealed without a content type. */
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

const latin1 = new TextDecoder('latin1');

/**
 * A body is treated as RETRIEVAL ciphertext only when the whole body (surrounding whitespace aside)
 * is one compact JWE. Decoding as latin1 maps every byte to one char, so a binary body can never
 * be mistaken for one and no UTF-8 error can be raised here.
 */
export function compactJweOf(body: Uint8Array): string | undefined {
  if (body.length < 16) return undefined;
  const text = latin1.decode(body).trim();
  return looksLikeCompactJwe(text) ? text : undefined;
}

/**
 * RETRIEVAL: the data store in between only ever holds ciphertext. Request bodies are sealed to the
 * domain's current key; response bodies that are this domain's JWE are opened for the (already
 * authorised) caller.
 */
export class RetrievalHandler implements TierHandler {
  readonly tier: Tier = 'RETRIEVAL';

  constructor(private readonly keyringOf: (ctx: PayloadContext) => Promise<Keyring> = (ctx) => loadKeyring(ctx.domain.keyringFile)) {}

  async protect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult> {
    const ring = await this.keyringOf(ctx);
    const sealed = sealForDomainBytes(body, ring, { domain: ctx.domain.name, contentType: ctx.contentType });
    return { body: sealed, contentType: PROTECTED_CONTENT_TYPE, headers: { 'x-mesh-protected': 'RETRIEVAL' } };
  }

  /**
   * A body that is not a compact JWE passes as it is (`undefined`): stores answer errors, listings
   * and empty bodies in plaintext that was never protected. Any JWE must be this domain's and open
   * under its keyring, else the body is refused (another domain's or tampered ciphertext).
   */
  async unprotect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult | undefined> {
    const compact = compactJweOf(body);
    if (compact === undefined) return undefined;
    const ring = await this.keyringOf(ctx);
    const opened = await openForDomain(compact, ring, ctx.domain.name);
    return { body: opened.plaintext, contentType: opened.contentType ?? DEFAULT_CONTENT_TYPE, headers: {} };
  }
}

/** Opens a RETRIEVAL body for an operator; refuses anything that is not this domain's JWE. */
export async function openRetrievalBody(body: Uint8Array, domain: string, rings: readonly Keyring[]): Promise<Uint8Array> {
  const compact = compactJweOf(body);
  if (compact === undefined) throw new PayloadError('payload_rejected', 'input is not a compact JWE');
  let last: unknown;
  for (const ring of rings) {
    try {
      return (await openForDomain(compact, ring, domain)).plaintext;
    } catch (e) {
      last = e;
    }
  }
  throw last instanceof Error ? last : new PayloadError('payload_rejected', 'no keyring opens this JWE');
}
