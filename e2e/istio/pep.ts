/**
 * mesh-pep with the chart's own policy (the rendered ConfigMap), its key and audit paths moved from the
 * pod's mounts into a test folder; and a recording upstream that stores what it is sent and returns it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { loadPolicyFile } from '../../src/config/load.js';
import type { CompiledPolicy } from '../../src/config/types.js';
import { mintPolicyToken } from '../../src/identity/dev-issuer.js';
import { asObject, dig, type Json } from '../../test/deploy/support/repo.js';
import { startMeshPep, type MeshPepProcess } from '../../tools/envoy/index.js';

export interface ChartPep {
  pep: MeshPepProcess;
  policy: CompiledPolicy;
  token(o: { agent: string; role: string; spiffe?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startChartPep(objects: Json[]): Promise<ChartPep> {
  const cm = objects.find((o) => o['kind'] === 'ConfigMap');
  if (!cm) throw new Error('the chart rendered no policy ConfigMap');
  const doc = asObject(YAML.parse(String(dig(cm, ['data', 'security_mesh.yaml']))), 'policy');
  const mesh = asObject(doc['security_mesh'], 'security_mesh');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-istio-'));
  // Relative paths resolve against the policy file's folder: everything lands in the test folder.
  asObject(mesh['identity'], 'identity')['jwks_file'] = 'identity/issuer.jwks.json';
  Object.assign(asObject(mesh['keys'], 'keys'), { dir: 'keys', pseudonym_key_file: 'pseudonym/pseudonym.key' });
  asObject(mesh['audit'], 'audit')['file'] = 'audit/audit.jsonl';
  const file = path.join(dir, 'security_mesh.yaml');
  await writeFile(file, YAML.stringify(doc));
  const pep = await startMeshPep({ configFile: file, extraArgs: ['--init-keys'] });
  const { policy } = await loadPolicyFile(file);
  return {
    pep,
    policy,
    token: (o) => mintPolicyToken(policy, { agentId: o.agent, role: o.role, ttlMs: 120_000, spiffeId: o.spiffe }),
    close: async () => {
      await pep.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A store: PUT/POST keeps the body and its content type under the path, GET returns them; every request is recorded. */
export interface RecordingUpstream {
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const seen: Seen[] = [];
  const stored = new Map<string, { type: string; body: Buffer }>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '/';
      seen.push({ method: req.method ?? '', url, headers: req.headers, body });
      if (req.method === 'PUT' || req.method === 'POST') {
        stored.set(url, { type: String(req.headers['content-type'] ?? 'application/octet-stream'), body });
        res.writeHead(201, { 'content-type': 'application/json' }).end('{"stored":true}');
        return;
      }
      const item = stored.get(url);
      if (item) res.writeHead(200, { 'content-type': item.type, 'content-length': item.body.length }).end(item.body);
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('upstream-ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
