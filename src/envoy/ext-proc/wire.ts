import { denyBody, REASONS } from '../../policy/reasons.js';
import { headerMapOf, mayRemoveHeader, maySetHeader, type WireHeaderValue } from './headers.js';
import { ProtocolViolation, type HeaderChanges, type Inbound, type InboundMessage, type Outbound } from './messages.js';

/**
 * ProcessingRequest / ProcessingResponse as @grpc/proto-loader hands them over (keepCase, oneofs as a
 * virtual `request` / `response` field naming the member that is set). Only the fields the adapter
 * reads are typed; google.protobuf.Struct keeps protobufjs' camelCase (`stringValue`).
 */
interface WireStructValue {
  stringValue?: string;
  kind?: string;
}
interface WireStruct {
  fields?: Record<string, WireStructValue | undefined>;
}
interface WireHttpHeaders {
  headers?: { headers?: WireHeaderValue[] } | null;
  end_of_stream?: boolean;
}
interface WireHttpBody {
  body?: Uint8Array | null;
  end_of_stream?: boolean;
}
export interface WireProcessingRequest {
  request?: string;
  request_headers?: WireHttpHeaders | null;
  response_headers?: WireHttpHeaders | null;
  request_body?: WireHttpBody | null;
  response_body?: WireHttpBody | null;
  request_trailers?: object | null;
  response_trailers?: object | null;
  metadata_context?: { filter_metadata?: Record<string, WireStruct | undefined> } | null;
  /** `request_attributes` values, keyed by filter name (`envoy.filters.http.ext_proc`). */
  attributes?: Record<string, WireStruct | undefined> | null;
  observability_mode?: boolean;
}

/** Marks a message that failed protobuf decoding, so the handler (not grpc-js) chooses the status. */
import { UNDECODABLE } from '../safe-deserialize.js';
export { UNDECODABLE };
export type DecodedOrNot = WireProcessingRequest | typeof UNDECODABLE;

export const AUTHZ_NAMESPACE = 'envoy.filters.http.ext_authz';

function authzMetadata(req: WireProcessingRequest): Record<string, string> {
  const fields = req.metadata_context?.filter_metadata?.[AUTHZ_NAMESPACE]?.fields ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (typeof v?.stringValue === 'string') out[k] = v.stringValue;
  return out;
}

/**
 * The caller's mTLS identity when the filter asks Envoy for it (`request_attributes:
 * [connection.uri_san_peer_certificate]`), the value ext_authz reports as `source.principal` under
 * Istio. Only on the message the attributes were requested for; undefined when Envoy sent none.
 */
export const PRINCIPAL_ATTRIBUTE = 'connection.uri_san_peer_certificate';

function principalAttribute(req: WireProcessingRequest): string | undefined {
  const attrs = req.attributes;
  if (!attrs) return undefined;
  for (const name in attrs) {
    const v = attrs[name]?.fields?.[PRINCIPAL_ATTRIBUTE];
    if (typeof v?.stringValue === 'string') return v.stringValue;
  }
  return undefined;
}

/**
 * The decoded bytes as a Buffer without copying them: protobufjs already hands out a view into the
 * message grpc-js assembled for this call alone, and a copy of every body (64 KiB and more) was
 * garbage the collector then had to chase.
 */
function asBuffer(bytes: Uint8Array | null | undefined): Buffer {
  if (!bytes) return Buffer.alloc(0);
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function headersOf(h: WireHttpHeaders | null | undefined): ReadonlyMap<string, string> {
  return headerMapOf(h?.headers?.headers);
}

function messageOf(req: WireProcessingRequest): Inbound {
  switch (req.request) {
    case 'request_headers':
    case 'response_headers': {
      const h = req[req.request];
      return { type: 'headers', phase: req.request, headers: headersOf(h), endOfStream: h?.end_of_stream === true };
    }
    case 'request_body':
    case 'response_body': {
      const b = req[req.request];
      return { type: 'body', phase: req.request, body: asBuffer(b?.body), endOfStream: b?.end_of_stream === true };
    }
    case 'request_trailers':
    case 'response_trailers':
      return { type: 'trailers', phase: req.request };
    default:
      throw new ProtocolViolation('ProcessingRequest has none of the known request members set');
  }
}

export function decodeRequest(raw: DecodedOrNot): InboundMessage {
  if (raw === UNDECODABLE) throw new ProtocolViolation('ProcessingRequest is not valid protobuf');
  const principal = principalAttribute(raw);
  return { message: messageOf(raw), observability: raw.observability_mode === true, authz: authzMetadata(raw), ...(principal !== undefined ? { principal } : {}) };
}

/** `raw_value` only: Envoy rejects a HeaderValue that sets both. `append: false` and
 * OVERWRITE_IF_EXISTS_OR_ADD both say "replace", whichever of the two this Envoy reads. */
function setHeader(name: string, value: string) {
  return {
    header: { key: name, raw_value: Buffer.from(value, 'latin1') },
    append: { value: false },
    append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
  };
}

function headerMutation(changes: HeaderChanges) {
  return {
    set_headers: changes.set.filter(([n]) => maySetHeader(n)).map(([n, v]) => setHeader(n, v)),
    remove_headers: changes.remove.filter(mayRemoveHeader),
  };
}

export function encodeResponse(out: Outbound): object {
  switch (out.type) {
    case 'headers':
      return { [out.phase]: { response: { status: 'CONTINUE', header_mutation: headerMutation(out.headers) } } };
    case 'body': {
      const body_mutation =
        out.body.kind === 'replace'
          ? { body: asBuffer(out.body.body) }
          : out.body.kind === 'clear'
            ? { clear_body: true }
            : undefined;
      return {
        [out.phase]: {
          response: { status: 'CONTINUE', header_mutation: headerMutation(out.headers), ...(body_mutation ? { body_mutation } : {}) },
        },
      };
    }
    case 'trailers':
      return { [out.phase]: { header_mutation: { set_headers: [], remove_headers: [] } } };
    case 'immediate': {
      const r = REASONS[out.reason];
      return {
        immediate_response: {
          status: { code: r.payloadHttp },
          headers: headerMutation({
            set: [
              ['content-type', 'application/json'],
              ['x-mesh-reason', out.reason],
            ],
            remove: [],
          }),
          body: Buffer.from(denyBody(out.reason)),
          details: `mesh_pep_${out.reason}`,
        },
      };
    }
  }
}
