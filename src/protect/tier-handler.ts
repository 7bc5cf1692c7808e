import type { CompiledPolicy, DomainPolicy, Tier } from '../config/types.js';

/**
 * What a tier handler knows about the body it transforms. Built by the ext_proc adapter (or the
 * library API) from the stream's state; handlers never see Envoy's protobuf shapes.
 */
export interface PayloadContext {
  policy: CompiledPolicy;
  domain: DomainPolicy;
  /** Content type of the body as it arrived (lower-case, may carry parameters), if any. */
  contentType: string | undefined;
  /**
   * `content-encoding` of the body as it arrived (gzip, deflate, br, or a list), if any. The pipeline
   * decodes it before scanning and protecting; tier handlers always see the decoded body.
   */
  contentEncoding?: string | undefined;
  /** Which way the body travels: `request` (caller → callee) or `response` (callee → caller). */
  direction: 'request' | 'response';
}

/** A transformed body and the headers that describe it. */
export interface PayloadResult {
  body: Uint8Array;
  contentType: string;
  /** Extra response/request headers to set (e.g. `x-mesh-protected`), lower-case names. */
  headers: Readonly<Record<string, string>>;
}

/**
 * One interface for every protection tier. `protect` turns plaintext into what may cross the hop;
 * `unprotect` opens what this domain protected earlier, or returns `undefined` when the body is not
 * protected material of this domain's kind (so it passes as it is, e.g. a plain error response).
 * Either throws `PayloadError` (reason `payload_rejected`, `attestation_failed`, ...) rather than
 * letting plaintext of a protected domain through.
 */
export interface TierHandler {
  readonly tier: Tier;
  protect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult>;
  unprotect(body: Uint8Array, ctx: PayloadContext): Promise<PayloadResult | undefined>;
}
