/**
 * A hand-written protobuf encoder for the CheckResponses `response.ts` builds. protobufjs' generic
 * `encode` forks a writer and queues an operation object per field and per nested message (a 6-header
 * allow is ~50 of them); this writes the same bytes straight into a reused buffer, in one pass.
 *
 * "The same bytes" is the contract, checked byte for byte against proto-loader's serializer in
 * test/envoy/check-codec.test.ts: fields in field-number order, a field written whenever it is present
 * (not null/undefined) even if it holds its default, as protobufjs does. Anything this encoder does not
 * model exactly — a negative or fractional number, a string that is not well-formed UTF-16 (protobufjs
 * encodes lone surrogates differently from Buffer) — throws `Unsupported` and the caller falls back to
 * protobufjs. `response.ts` declares its results as `CheckResponseObject`, so a field added there
 * that this encoder does not know is a compile error rather than a field silently left off the wire.
 * Field numbers (envoy/service/auth/v3/external_auth.proto, config/core/v3/base.proto,
 * type/v3/http_status.proto, google/rpc/status.proto, google/protobuf/{struct,wrappers}.proto):
 *   CheckResponse: status 1, denied_response 2, ok_response 3, dynamic_metadata 4
 *   Status: code 1, message 2 · DeniedHttpResponse: status 1 (HttpStatus: code 1), headers 2, body 3
 *   OkHttpResponse: headers 2, headers_to_remove 5 · HeaderValueOption: header 1, append 2
 *   HeaderValue: key 1, value 2 · BoolValue: value 1 · Struct: fields 1 (map entry: key 1, value 2)
 *   Value: string_value 3
 */
export interface HeaderOptionObject {
  header?: { key?: string; value?: string } | null;
  append?: { value?: boolean } | null;
}

export interface CheckResponseObject {
  status?: { code?: number; message?: string } | null;
  denied_response?: { status?: { code?: number } | null; headers?: readonly HeaderOptionObject[]; body?: string } | null;
  ok_response?: { headers?: readonly HeaderOptionObject[]; headers_to_remove?: readonly string[] } | null;
  dynamic_metadata?: { fields?: Readonly<Record<string, { stringValue?: string }>> } | null;
}

/** The response uses something this encoder does not model; encode it with protobufjs instead. */
export class Unsupported extends Error {}

let buf = Buffer.allocUnsafe(8192);
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  const next = Buffer.allocUnsafe(Math.max(buf.length * 2, pos + n));
  buf.copy(next, 0, 0, pos);
  buf = next;
}

function varint(v: number): void {
  ensure(5);
  while (v > 127) {
    buf[pos++] = (v & 127) | 128;
    v >>>= 7;
  }
  buf[pos++] = v;
}

function varintSize(v: number): number {
  return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : v < 268435456 ? 4 : 5;
}

function uint(tag: number, v: number): void {
  // int32/enum fields: protobufjs writes negatives as 10-byte varints; nothing here sends one.
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new Unsupported('number out of range');
  ensure(1);
  buf[pos++] = tag;
  varint(v);
}

interface WellFormed {
  isWellFormed(): boolean;
}

function string(tag: number, s: string): void {
  if (typeof s !== 'string') throw new Unsupported('not a string');
  const len = s.length;
  // Short ASCII strings (header names, ids, domain names: nearly all of them) are copied in JS; a
  // call into Buffer's UTF-8 writer costs more than the copy for a few dozen characters.
  if (len < 128) {
    ensure(2 + len);
    const start = pos;
    buf[pos++] = tag;
    buf[pos++] = len;
    let i = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) break;
      buf[pos++] = c;
    }
    if (i === len) return;
    pos = start;
  }
  if (!(s as unknown as WellFormed).isWellFormed()) throw new Unsupported('not well-formed UTF-16');
  const n = Buffer.byteLength(s);
  ensure(1 + 5 + n);
  buf[pos++] = tag;
  varint(n);
  pos += buf.write(s, pos);
}

/** Starts a length-delimited field with one length byte reserved; `end` fixes the length up. */
function begin(tag: number): number {
  ensure(2);
  buf[pos++] = tag;
  return pos++;
}

function end(at: number): void {
  const len = pos - at - 1;
  if (len < 128) {
    buf[at] = len;
    return;
  }
  // Longer than one length byte: move the content up to make room for the full varint.
  const extra = varintSize(len) - 1;
  ensure(extra);
  buf.copyWithin(at + 1 + extra, at + 1, pos);
  pos += extra;
  let v = len;
  let i = at;
  while (v > 127) {
    buf[i++] = (v & 127) | 128;
    v >>>= 7;
  }
  buf[i] = v;
}

function headerOption(tag: number, o: HeaderOptionObject): void {
  const at = begin(tag);
  const h = o.header;
  if (h != null) {
    const hAt = begin(0x0a);
    if (h.key != null) string(0x0a, h.key);
    if (h.value != null) string(0x12, h.value);
    end(hAt);
  }
  const a = o.append;
  if (a != null) {
    const aAt = begin(0x12);
    if (a.value != null) {
      ensure(2);
      buf[pos++] = 0x08;
      buf[pos++] = a.value ? 1 : 0;
    }
    end(aAt);
  }
  end(at);
}

function headerOptions(tag: number, list: readonly HeaderOptionObject[] | undefined): void {
  if (list == null) return;
  for (const o of list) headerOption(tag, o);
}

/** Encodes, or throws `Unsupported`. The returned Buffer is a fresh copy (grpc-js keeps it). */
export function encodeCheckResponseFast(res: CheckResponseObject): Buffer {
  pos = 0;
  const s = res.status;
  if (s != null) {
    const at = begin(0x0a);
    if (s.code != null) uint(0x08, s.code);
    if (s.message != null) string(0x12, s.message);
    end(at);
  }
  const d = res.denied_response;
  if (d != null) {
    const at = begin(0x12);
    if (d.status != null) {
      const sAt = begin(0x0a);
      if (d.status.code != null) uint(0x08, d.status.code);
      end(sAt);
    }
    headerOptions(0x12, d.headers);
    if (d.body != null) string(0x1a, d.body);
    end(at);
  }
  const ok = res.ok_response;
  if (ok != null) {
    const at = begin(0x1a);
    headerOptions(0x12, ok.headers);
    if (ok.headers_to_remove != null) for (const h of ok.headers_to_remove) string(0x2a, h);
    end(at);
  }
  const md = res.dynamic_metadata;
  if (md != null) {
    const at = begin(0x22);
    const fields = md.fields;
    if (fields != null) {
      for (const k of Object.keys(fields)) {
        const v = fields[k]!;
        const eAt = begin(0x0a);
        string(0x0a, k);
        const vAt = begin(0x12);
        if (v.stringValue != null) string(0x1a, v.stringValue);
        end(vAt);
        end(eAt);
      }
    }
    end(at);
  }
  return Buffer.from(buf.subarray(0, pos));
}
