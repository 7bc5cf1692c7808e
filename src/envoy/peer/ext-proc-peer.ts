/**
 * Envoy's side of an ext_proc stream, played faithfully: the tests, `npm run demo`, `mesh-pep probe` and
 * the benchmarks all drive the real server through it.
 *
 * What it does as Envoy's ext_proc filter does (envoy/service/ext_proc/v3/external_processor.proto,
 * envoy/extensions/filters/http/ext_proc/v3/processing_mode.proto):
 * - sends request headers → request body → request trailers → (upstream) → response headers →
 *   response body → response trailers, each only when the processing mode says so;
 * - header values go out in `raw_value` (send_header_raw_value, the default), and are read back from
 *   `raw_value` only: a server writing `value` would set empty headers, as with a real Envoy;
 * - BUFFERED: the whole body in one message, waiting for the answer; header mutations in the body
 *   answer apply; if the resulting `content-length` does not match the body, Envoy rejects the
 *   mutation with a local 500 reply;
 * - STREAMED: chunks are sent without waiting (Envoy pipelines them), each answer replaces or clears
 *   its chunk, header mutations in body answers are ignored, and content-length is removed at the
 *   headers phase because it cannot be kept correct;
 * - mutation rules are the defaults (or `allow_envoy`): setting `host`, `:authority`, `:scheme`,
 *   `:method`, or any `x-envoy-*` header, and removing `:`-prefixed headers, `host` or (without
 *   allow_envoy) `x-envoy-*`, are ignored and counted in `rejectedMutations`;
 * - `observability_mode`: nothing is waited for and any answer is a protocol error;
 * - exactly one answer of the matching type (or an immediate response) per message; anything else
 *   fails the exchange with `PeerProtocolError`.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS, PROTO_FILES } from '../protos.js';

export type HeaderList = Array<[string, string]>;
export type BodyMode = 'NONE' | 'BUFFERED' | 'STREAMED';

export interface ProcessingModeSpec {
  requestHeaders?: 'SEND' | 'SKIP';
  responseHeaders?: 'SEND' | 'SKIP';
  requestBody: BodyMode;
  responseBody: BodyMode;
  requestTrailers?: 'SEND' | 'SKIP';
  responseTrailers?: 'SEND' | 'SKIP';
}

export interface PeerOptions {
  address: string;
  mode: ProcessingModeSpec;
  observability?: boolean;
  /** `mutation_rules.allow_envoy` */
  allowEnvoy?: boolean;
  /** gRPC call metadata Envoy sends with the stream (its trace context: `traceparent`, `x-b3-*`). */
  callMetadata?: Record<string, string>;
  /**
   * String fields of the ext_authz dynamic metadata forwarded in `metadata_context`; a function gets
   * the exchange's request headers (what Check saw), for metadata bound to the request.
   */
  authzMetadata?: Record<string, string> | ((requestHeaders: HeaderList) => Record<string, string>);
  /** The client's mTLS URI SAN, sent as the `connection.uri_san_peer_certificate` request attribute. */
  principalAttribute?: string;
  /** Chunk size for STREAMED bodies. */
  chunkSize?: number;
}

export interface HttpRequest {
  headers: HeaderList;
  body?: Buffer;
  trailers?: HeaderList;
}

export interface HttpResponse {
  status: number;
  headers: HeaderList;
  body?: Buffer;
  trailers?: HeaderList;
}

export interface ExchangeResult {
  /** `upstream`: the request reached the callee; `local`: Envoy answered itself (immediate response or error). */
  kind: 'upstream' | 'local';
  /** What the callee received, when it was reached. */
  upstreamRequest: { headers: HeaderList; body: Buffer; trailers: HeaderList | undefined } | undefined;
  /** What the calling client received. */
  response: { status: number; headers: HeaderList; body: Buffer; trailers: HeaderList | undefined };
  /** Header mutations Envoy would have ignored under the configured mutation rules. */
  rejectedMutations: string[];
  /** Why Envoy answered locally, when it did. */
  localReason: 'immediate_response' | 'stream_error' | 'content_length_mismatch' | 'earlier_filter' | undefined;
  /** The gRPC status the server ended the stream with. */
  grpcStatus: grpc.status;
  /** Message types sent and answered, in order (for assertions on the protocol itself). */
  transcript: Array<{ sent: string; answered: string | undefined }>;
}

export class PeerProtocolError extends Error {
  override name = 'PeerProtocolError';
}

// The peer is Envoy: it reads enums as numbers, as Envoy's C++ does.
const PEER_LOADER: protoLoader.Options = { ...LOADER_OPTIONS, enums: Number };
let peerCtor: grpc.ServiceClientConstructor | undefined;

function processorClientCtor(): grpc.ServiceClientConstructor {
  if (!peerCtor) {
    const root = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_FILES.extProc, PEER_LOADER));
    let node: unknown = root;
    for (const part of 'envoy.service.ext_proc.v3.ExternalProcessor'.split('.')) node = (node as Record<string, unknown>)[part];
    peerCtor = node as grpc.ServiceClientConstructor;
  }
  return peerCtor;
}

// --- wire shapes the peer reads (enums as numbers) ----------------------------------------------

interface WireHeaderValueOption {
  header?: { key?: string; value?: string; raw_value?: Buffer | null } | null;
  append?: { value?: boolean } | null;
  append_action?: number;
}
interface WireHeaderMutation {
  set_headers?: WireHeaderValueOption[];
  remove_headers?: string[];
}
interface WireCommonResponse {
  status?: number;
  header_mutation?: WireHeaderMutation | null;
  body_mutation?: { mutation?: 'body' | 'clear_body'; body?: Buffer; clear_body?: boolean } | null;
}
interface WireProcessingResponse {
  response?: string;
  request_headers?: { response?: WireCommonResponse | null };
  response_headers?: { response?: WireCommonResponse | null };
  request_body?: { response?: WireCommonResponse | null };
  response_body?: { response?: WireCommonResponse | null };
  request_trailers?: { header_mutation?: WireHeaderMutation | null };
  response_trailers?: { header_mutation?: WireHeaderMutation | null };
  immediate_response?: { status?: { code?: number } | null; headers?: WireHeaderMutation | null; body?: Buffer };
}

const APPEND_IF_EXISTS_OR_ADD = 0;
const ADD_IF_ABSENT = 1;
const OVERWRITE_IF_EXISTS_OR_ADD = 2;
const OVERWRITE_IF_EXISTS = 3;

/** Envoy's default HeaderMutationRules (plus allow_envoy). */
function maySet(name: string, allowEnvoy: boolean): boolean {
  if (name === 'host' || name === ':authority' || name === ':scheme' || name === ':method') return false;
  if (name.startsWith('x-envoy') && !allowEnvoy) return false;
  return true;
}
function mayRemove(name: string, allowEnvoy: boolean): boolean {
  if (name.startsWith(':') || name === 'host') return false;
  if (name.startsWith('x-envoy') && !allowEnvoy) return false;
  return true;
}

export function header(list: HeaderList, name: string): string | undefined {
  const hit = list.find(([n]) => n === name);
  return hit?.[1];
}

function applyHeaderMutation(list: HeaderList, m: WireHeaderMutation | null | undefined, allowEnvoy: boolean, rejected: string[]): HeaderList {
  let out = list.map(([n, v]) => [n, v] as [string, string]);
  for (const raw of m?.remove_headers ?? []) {
    const name = raw.toLowerCase();
    if (!mayRemove(name, allowEnvoy)) {
      rejected.push(`remove ${name}`);
      continue;
    }
    out = out.filter(([n]) => n !== name);
  }
  for (const sh of m?.set_headers ?? []) {
    const key = sh.header?.key?.toLowerCase();
    if (!key) continue;
    const hasValue = (sh.header?.value ?? '') !== '';
    const hasRaw = (sh.header?.raw_value?.length ?? 0) > 0;
    if (hasValue && hasRaw) throw new PeerProtocolError(`set_headers ${key} sets both value and raw_value`);
    if (!maySet(key, allowEnvoy)) {
      rejected.push(`set ${key}`);
      continue;
    }
    // send_header_raw_value is on: the value is raw_value, whatever `value` says.
    const value = sh.header?.raw_value ? Buffer.from(sh.header.raw_value).toString('latin1') : '';
    const exists = out.some(([n]) => n === key);
    const action = sh.append_action ?? APPEND_IF_EXISTS_OR_ADD;
    let append: boolean;
    if (action !== APPEND_IF_EXISTS_OR_ADD) {
      if (action === ADD_IF_ABSENT && exists) continue;
      if (action === OVERWRITE_IF_EXISTS && !exists) continue;
      append = false;
      if (action !== ADD_IF_ABSENT && action !== OVERWRITE_IF_EXISTS && action !== OVERWRITE_IF_EXISTS_OR_ADD) {
        throw new PeerProtocolError(`unknown append_action ${action}`);
      }
    } else {
      append = sh.append?.value ?? false;
    }
    if (!append) out = out.filter(([n]) => n !== key);
    out.push([key, value]);
  }
  return out;
}

function toWireHeaders(list: HeaderList) {
  return { headers: list.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) };
}

function toStruct(fields: Record<string, string> | undefined) {
  if (!fields) return undefined;
  return {
    filter_metadata: {
      'envoy.filters.http.ext_authz': { fields: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, { stringValue: v }])) },
    },
  };
}

function chunksOf(body: Buffer, size: number): Buffer[] {
  if (body.length === 0) return [body];
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) out.push(body.subarray(i, i + size));
  return out;
}

class LocalReply extends Error {
  constructor(
    readonly status: number,
    readonly headers: HeaderList,
    readonly body: Buffer,
    readonly why: NonNullable<ExchangeResult['localReason']>,
  ) {
    super(`local reply ${status}`);
  }
}

/** One ext_proc stream carrying one HTTP exchange. */
class PeerStream {
  private readonly queue: WireProcessingResponse[] = [];
  private waiter: ((r: WireProcessingResponse | undefined) => void) | undefined;
  private ended = false;
  status: grpc.StatusObject | undefined;
  private readonly statusReady: Promise<grpc.StatusObject>;
  readonly transcript: ExchangeResult['transcript'] = [];

  constructor(private readonly call: grpc.ClientDuplexStream<object, WireProcessingResponse>) {
    call.on('data', (r: WireProcessingResponse) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(r);
      } else this.queue.push(r);
    });
    this.statusReady = new Promise((resolve) => {
      const done = (s: grpc.StatusObject) => {
        if (this.status) return;
        this.status = s;
        this.ended = true;
        if (this.waiter) {
          const w = this.waiter;
          this.waiter = undefined;
          w(undefined);
        }
        resolve(s);
      };
      call.on('status', done);
      call.on('error', (e: grpc.ServiceError) => done({ code: e.code, details: e.details, metadata: e.metadata }));
    });
    // Once the server ends the stream, grpc-js ends the readable side too.
    call.on('end', () => undefined);
  }

  send(msg: object, label: string): void {
    this.transcript.push({ sent: label, answered: undefined });
    if (!this.ended) this.call.write(msg);
  }

  /** The next answer, or undefined when the server closed the stream. */
  next(): Promise<WireProcessingResponse | undefined> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** Answer to the i-th unanswered message: must be `expected` or an immediate response. */
  async expect(expected: string): Promise<WireProcessingResponse> {
    const r = await this.next();
    const entry = this.transcript.find((t) => t.answered === undefined);
    if (!r) {
      const s = await this.statusReady;
      if (s.code === grpc.status.OK) {
        // A clean close means "proceed without the server": Envoy would let the rest through.
        throw new PeerProtocolError(`server closed the stream cleanly instead of answering ${expected}`);
      }
      throw new LocalReply(500, [['content-type', 'text/plain']], Buffer.from('ext_proc stream error'), 'stream_error');
    }
    if (entry) entry.answered = r.response;
    if (r.response === 'immediate_response') {
      const ir = r.immediate_response!;
      const headers = applyHeaderMutation([], ir.headers, false, []);
      throw new LocalReply(ir.status?.code ?? 500, headers, Buffer.from(ir.body ?? []), 'immediate_response');
    }
    if (r.response !== expected) throw new PeerProtocolError(`answer to ${expected} was ${r.response}`);
    return r;
  }

  halfClose(): Promise<grpc.StatusObject> {
    this.call.end();
    return this.statusReady;
  }

  cancel(): void {
    this.call.cancel();
  }

  /** Answers that arrived beyond one per message. */
  extra(): WireProcessingResponse[] {
    return this.queue.splice(0);
  }
}

export class EnvoyPeer {
  private readonly client: grpc.Client;

  constructor(private readonly opts: PeerOptions) {
    const Ctor = processorClientCtor();
    this.client = new Ctor(opts.address, grpc.credentials.createInsecure());
  }

  close(): void {
    this.client.close();
  }

  /** Opens a raw Process stream (for tests that script messages themselves). */
  openRaw(): grpc.ClientDuplexStream<object, WireProcessingResponse> {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.opts.callMetadata ?? {})) md.set(k, v);
    return (this.client as unknown as { Process(md: grpc.Metadata): grpc.ClientDuplexStream<object, WireProcessingResponse> }).Process(md);
  }

  /** Request headers of the exchange in progress (for `authzMetadata` given as a function). */
  private requestHeaders: HeaderList = [];

  private envelope(member: string, payload: object, first: boolean): object {
    const md = this.opts.authzMetadata;
    const principal = this.opts.principalAttribute;
    return {
      [member]: payload,
      ...(first && md ? { metadata_context: toStruct(typeof md === 'function' ? md(this.requestHeaders) : md) } : {}),
      // Envoy sends `request_attributes` with the request headers message.
      ...(member === 'request_headers' && principal !== undefined
        ? { attributes: { 'envoy.filters.http.ext_proc': { fields: { 'connection.uri_san_peer_certificate': { stringValue: principal } } } } }
        : {}),
      observability_mode: this.opts.observability === true,
    };
  }

  /**
   * Plays one HTTP exchange through the ext_proc server: the client's `request`, the callee's
   * `upstream` answer, and returns what the callee and the client each saw.
   */
  async exchange(request: HttpRequest, upstream: (req: NonNullable<ExchangeResult['upstreamRequest']>) => Promise<HttpResponse> | HttpResponse): Promise<ExchangeResult> {
    return this.run(request, upstream);
  }

  /**
   * The local reply of an earlier filter (ext_authz's deny, or its `status_on_error`) as Envoy 1.40
   * really handles it: Envoy runs it through every encoder filter, so this filter opens a stream at
   * response headers (no request headers, no Check metadata) and sends the reply's body as configured.
   * What the client gets is whatever that stream makes of it.
   */
  async localReply(reply: HttpResponse): Promise<ExchangeResult> {
    return this.run(undefined, () => reply);
  }

  private async run(
    request: HttpRequest | undefined,
    upstream: (req: NonNullable<ExchangeResult['upstreamRequest']>) => Promise<HttpResponse> | HttpResponse,
  ): Promise<ExchangeResult> {
    this.requestHeaders = request?.headers ?? [];
    const mode = this.opts.mode;
    const observe = this.opts.observability === true;
    const allowEnvoy = this.opts.allowEnvoy === true;
    const rejected: string[] = [];
    const stream = new PeerStream(this.openRaw());
    let first = true;
    let upstreamRequest: ExchangeResult['upstreamRequest'];
    let localReason: ExchangeResult['localReason'];
    let response: ExchangeResult['response'];

    const phase = async (
      side: 'request' | 'response',
      headersIn: HeaderList,
      bodyIn: Buffer,
      trailersIn: HeaderList | undefined,
      headerMode: 'SEND' | 'SKIP',
      bodyMode: BodyMode,
      trailerMode: 'SEND' | 'SKIP',
    ): Promise<{ headers: HeaderList; body: Buffer; trailers: HeaderList | undefined }> => {
      let headers = headersIn;
      let body = bodyIn;
      let trailers = trailersIn;
      const hasBody = bodyIn.length > 0;
      const endAtHeaders = !hasBody && !trailersIn;
      if (headerMode === 'SEND') {
        stream.send(this.envelope(`${side}_headers`, { headers: toWireHeaders(headers), end_of_stream: endAtHeaders }, first), `${side}_headers`);
        first = false;
        if (!observe) {
          const r = await stream.expect(`${side}_headers`);
          const common = r[`${side}_headers`]?.response;
          headers = applyHeaderMutation(headers, common?.header_mutation, allowEnvoy, rejected);
          if (common?.body_mutation?.mutation) throw new PeerProtocolError(`${side}_headers answer mutates a body without CONTINUE_AND_REPLACE`);
        }
      }
      // Envoy drops content-length when it cannot keep it right (processing_mode.proto).
      const mutableBody = !observe && hasBody && (bodyMode === 'STREAMED' || (bodyMode === 'BUFFERED' && headerMode === 'SKIP'));
      if (mutableBody) headers = headers.filter(([n]) => n !== 'content-length');

      if (hasBody && bodyMode === 'BUFFERED') {
        stream.send(this.envelope(`${side}_body`, { body, end_of_stream: !trailers }, first), `${side}_body`);
        first = false;
        if (!observe) {
          const r = await stream.expect(`${side}_body`);
          const common = r[`${side}_body`]?.response;
          headers = applyHeaderMutation(headers, common?.header_mutation, allowEnvoy, rejected);
          body = applyBodyMutation(body, common?.body_mutation);
          const cl = header(headers, 'content-length');
          if (cl !== undefined && Number(cl) !== body.length) {
            throw new LocalReply(500, [['content-type', 'text/plain']], Buffer.from('content-length mismatch'), 'content_length_mismatch');
          }
        }
      } else if (hasBody && bodyMode === 'STREAMED') {
        const chunks = chunksOf(body, this.opts.chunkSize ?? 64);
        chunks.forEach((c, i) => {
          stream.send(this.envelope(`${side}_body`, { body: c, end_of_stream: i === chunks.length - 1 && !trailers }, first), `${side}_body`);
          first = false;
        });
        if (!observe) {
          const out: Buffer[] = [];
          for (const c of chunks) {
            const r = await stream.expect(`${side}_body`);
            const common = r[`${side}_body`]?.response;
            // Header mutations in STREAMED body answers are ignored: headers already went on.
            if ((common?.header_mutation?.set_headers?.length ?? 0) + (common?.header_mutation?.remove_headers?.length ?? 0) > 0) {
              rejected.push(`${side}_body header mutation ignored in STREAMED mode`);
            }
            out.push(applyBodyMutation(c, common?.body_mutation));
          }
          body = Buffer.concat(out);
        }
      }
      if (trailers && trailerMode === 'SEND') {
        stream.send(this.envelope(`${side}_trailers`, { trailers: toWireHeaders(trailers) }, first), `${side}_trailers`);
        first = false;
        if (!observe) {
          const r = await stream.expect(`${side}_trailers`);
          trailers = applyHeaderMutation(trailers, r[`${side}_trailers`]?.header_mutation, allowEnvoy, rejected);
        }
      }
      return { headers, body, trailers };
    };

    try {
      let res: HttpResponse;
      if (request) {
        const req = await phase(
          'request',
          request.headers,
          request.body ?? Buffer.alloc(0),
          request.trailers,
          mode.requestHeaders ?? 'SEND',
          mode.requestBody,
          mode.requestTrailers ?? 'SKIP',
        );
        upstreamRequest = req;
        res = await upstream(req);
      } else {
        // An earlier filter's local reply: nothing went upstream; the reply alone crosses this filter.
        res = await upstream({ headers: [], body: Buffer.alloc(0), trailers: undefined });
        localReason = 'earlier_filter';
      }
      const out = await phase(
        'response',
        [[':status', String(res.status)], ...res.headers],
        res.body ?? Buffer.alloc(0),
        res.trailers,
        mode.responseHeaders ?? 'SEND',
        mode.responseBody,
        mode.responseTrailers ?? 'SKIP',
      );
      const status = Number(header(out.headers, ':status') ?? res.status);
      response = { status, headers: out.headers.filter(([n]) => n !== ':status'), body: out.body, trailers: out.trailers };
    } catch (e) {
      if (!(e instanceof LocalReply)) {
        stream.cancel();
        throw e;
      }
      localReason = e.why;
      response = { status: e.status, headers: e.headers, body: e.body, trailers: undefined };
    }

    const st = stream.status ?? (await stream.halfClose());
    const extra = stream.extra();
    if (extra.length) throw new PeerProtocolError(`server sent ${extra.length} answer(s) beyond one per message: ${extra.map((r) => r.response).join(', ')}`);
    if (observe && stream.transcript.some((t) => t.answered !== undefined)) throw new PeerProtocolError('server answered in observability mode');
    return {
      kind: localReason ? 'local' : 'upstream',
      upstreamRequest: localReason && !upstreamRequest ? undefined : upstreamRequest,
      response,
      rejectedMutations: rejected,
      localReason,
      grpcStatus: st.code,
      transcript: stream.transcript,
    };
  }
}

function applyBodyMutation(body: Buffer, m: WireCommonResponse['body_mutation']): Buffer {
  if (!m?.mutation) return body;
  if (m.mutation === 'clear_body') return m.clear_body ? Buffer.alloc(0) : body;
  return Buffer.from(m.body ?? []);
}

/**
 * A raw Process stream that sends bytes as they are, for garbage-protobuf tests: grpc-js with a
 * passthrough serializer, the way a broken or hostile client would.
 */
export function rawProcessCall(address: string): { client: grpc.Client; call: grpc.ClientDuplexStream<Buffer, Buffer> } {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(
    '/envoy.service.ext_proc.v3.ExternalProcessor/Process',
    (b: Buffer) => b,
    (b: Buffer) => b,
  );
  return { client, call };
}
