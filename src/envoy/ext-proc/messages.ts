/**
 * The plain side of the ext_proc adapter: what one ProcessingRequest says and what one
 * ProcessingResponse should say, with no protobuf shapes. `wire.ts` converts both ways.
 */
import type { ReasonCode } from '../../policy/reasons.js';

export type HeadersPhase = 'request_headers' | 'response_headers';
export type BodyPhase = 'request_body' | 'response_body';
export type TrailersPhase = 'request_trailers' | 'response_trailers';
export type Phase = HeadersPhase | BodyPhase | TrailersPhase;

export type Inbound =
  | { type: 'headers'; phase: HeadersPhase; headers: ReadonlyMap<string, string>; endOfStream: boolean }
  | { type: 'body'; phase: BodyPhase; body: Buffer; endOfStream: boolean }
  | { type: 'trailers'; phase: TrailersPhase };

/** One decoded ProcessingRequest. */
export interface InboundMessage {
  message: Inbound;
  /** Envoy will ignore answers (`observability_mode`): none is sent. */
  observability: boolean;
  /** String fields of the `envoy.filters.http.ext_authz` dynamic metadata Check wrote, if forwarded. */
  authz: Readonly<Record<string, string>>;
  /** The caller's mTLS principal from Envoy's `request_attributes`, when the filter asks for it. */
  principal?: string;
}

export interface HeaderChanges {
  set: ReadonlyArray<readonly [string, string]>;
  remove: readonly string[];
}

export const NO_HEADER_CHANGES: HeaderChanges = { set: [], remove: [] };

export type BodyChange = { kind: 'keep' } | { kind: 'clear' } | { kind: 'replace'; body: Uint8Array };

export type Outbound =
  | { type: 'headers'; phase: HeadersPhase; headers: HeaderChanges }
  | { type: 'body'; phase: BodyPhase; body: BodyChange; headers: HeaderChanges }
  | { type: 'trailers'; phase: TrailersPhase }
  | { type: 'immediate'; reason: ReasonCode };

/** A ProcessingRequest that breaks the protocol: answered with gRPC INVALID_ARGUMENT. */
export class ProtocolViolation extends Error {
  override name = 'ProtocolViolation';
}
