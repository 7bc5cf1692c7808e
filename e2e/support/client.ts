/**
 * Real HTTP/1.1 and HTTP/2 (h2c, prior knowledge) clients against Envoy's listener. Each request
 * uses its own connection, so no test depends on another's keep-alive state.
 */
import http from 'node:http';
import http2 from 'node:http2';

export interface ClientRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /**
   * HTTP/1.1 only: send the body in these pieces with `transfer-encoding: chunked` and no
   * content-length (each piece written separately).
   */
  chunks?: Array<string | Buffer>;
  timeoutMs?: number;
}

export interface ClientResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  text(): string;
  json<T = Record<string, unknown>>(): T;
}

function response(status: number, headers: Record<string, string>, body: Buffer): ClientResponse {
  return {
    status,
    headers,
    body,
    text: () => body.toString('utf8'),
    json: <T>() => JSON.parse(body.toString('utf8')) as T,
  };
}

export function h1(port: number, req: ClientRequest): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers };
    const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body);
    if (body && !req.chunks) headers['content-length'] = String(body.length);
    const r = http.request(
      { host: '127.0.0.1', port, method: req.method ?? (body || req.chunks ? 'POST' : 'GET'), path: req.path, headers, agent: false, timeout: req.timeoutMs ?? 20_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
          resolve(response(res.statusCode ?? 0, out, Buffer.concat(chunks)));
        });
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`HTTP/1.1 ${req.path} timed out`)));
    r.on('error', reject);
    if (req.chunks) {
      // No content-length: Node sends transfer-encoding: chunked, one chunk per write.
      (async () => {
        for (const c of req.chunks!) {
          r.write(c);
          await new Promise((res) => setTimeout(res, 5));
        }
        r.end();
      })().catch(reject);
    } else r.end(body);
  });
}

export function h2(port: number, req: ClientRequest): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body);
    const headers: http2.OutgoingHttpHeaders = {
      ':method': req.method ?? (body ? 'POST' : 'GET'),
      ':path': req.path,
      ...req.headers,
    };
    if (body) headers['content-length'] = String(body.length);
    const stream = session.request(headers, { endStream: !body });
    stream.setTimeout(req.timeoutMs ?? 20_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    let status = 0;
    const out: Record<string, string> = {};
    stream.on('response', (h) => {
      status = Number(h[':status']);
      for (const [k, v] of Object.entries(h)) if (!k.startsWith(':') && v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : String(v);
    });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      session.close();
      resolve(response(status, out, Buffer.concat(chunks)));
    });
    stream.on('error', (e) => {
      session.close();
      reject(e);
    });
    if (body) stream.end(body);
  });
}
