// A tiny demo agent for envoy/docker-compose.yaml: plain Node, no dependencies.
//
//   AGENT_MODE=echo   answers every request with what actually arrived after Envoy and mesh-pep
//                     (method, path, headers, body), so a curl shows stripped and added headers and
//                     protected (encrypted) bodies.
//   AGENT_MODE=store  a memory store: PUT/POST /items/<id> keeps the body exactly as received, GET
//                     /items/<id> returns it. Behind a RETRIEVAL domain it only ever holds ciphertext.
//
// It also sets `server` and `x-powered-by` on responses: masking domains remove them on the way out.
import http from 'node:http';

const name = process.env.AGENT_NAME ?? 'agent';
const mode = process.env.AGENT_MODE ?? 'echo';
const port = Number(process.env.PORT ?? 8080);
const MAX_BODY = 1 << 20;
const items = new Map();

function send(res, status, contentType, body) {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    server: `demo-${name}`,
    'x-powered-by': 'node-demo-agent',
  });
  res.end(body);
}

function json(res, status, value) {
  send(res, status, 'application/json', JSON.stringify(value, null, 2) + '\n');
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) {
      json(res, 413, { error: 'body too large' });
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://agent');
    // One line per request in `docker compose logs <agent>`: what arrived, whatever the response path does.
    console.log(`${req.method} ${url.pathname} content-type=${req.headers['content-type'] ?? '-'} bytes=${Buffer.byteLength(body)} mesh-domain=${req.headers['x-mesh-domain'] ?? '-'}`);
    if (url.pathname === '/healthz') return send(res, 200, 'text/plain', 'ok\n');

    if (mode === 'store' && url.pathname.startsWith('/items/')) {
      const id = url.pathname.slice('/items/'.length);
      if (req.method === 'PUT' || req.method === 'POST') {
        items.set(id, { body, contentType: req.headers['content-type'] ?? 'application/octet-stream' });
        // Describe what the store holds without echoing it: with mesh-pep in front it is a compact JWE
        // (5 dot-separated parts, content type application/jose), never the plaintext.
        return json(res, 201, {
          agent: name,
          stored: id,
          bytes: Buffer.byteLength(body),
          stored_content_type: items.get(id).contentType,
          stored_dot_separated_parts: body.split('.').length,
        });
      }
      const item = items.get(id);
      if (!item) return json(res, 404, { agent: name, error: 'no such item', id });
      return send(res, 200, item.contentType, item.body);
    }

    json(res, 200, {
      agent: name,
      received: { method: req.method, path: url.pathname + url.search, headers: req.headers, body: body.length > 4096 ? body.slice(0, 4096) + '…' : body },
    });
  });
});

server.listen(port, process.env.HOST ?? '0.0.0.0', () => console.log(`${name} (${mode}) listening on :${server.address().port}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
