import http from 'node:http';
import type { Runtime } from '../server/runtime.js';

/**
 * The admin HTTP listener: `/healthz` (the process answers), `/readyz` (policy, keys, listeners and
 * audit are ready and we are not draining), `/metrics` (Prometheus text format).
 */
export function createAdminHttpServer(rt: Runtime): http.Server {
  return http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (url) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const ready = rt.ready;
        const why = rt.draining ? 'draining' : !rt.listening ? 'starting' : !rt.audit.healthy ? 'audit unavailable' : 'ready';
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${why}\n`);
        return;
      }
      case '/metrics':
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(rt.metrics.registry.render());
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
}
