import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { asArray, asObject, dig, readRepoFile, readYaml, repoPath, type Json } from './support/repo.js';
import { SERVER } from './support/server-contract.js';
import { WORKER_V8_FLAGS } from '../../src/server/workers.js';

interface Instruction {
  op: string;
  args: string;
  stage: string;
}

/** Dockerfile instructions with line continuations joined and comments dropped, tagged with their stage. */
function dockerfile(): Instruction[] {
  const text = readRepoFile('Dockerfile').replace(/\\\n/g, ' ');
  const out: Instruction[] = [];
  let stage = '';
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(trimmed);
    assert.ok(m, `Dockerfile line is an instruction: ${trimmed}`);
    if (m[1] === 'FROM') stage = /\bAS\s+(\S+)/i.exec(m[2])?.[1] ?? '';
    out.push({ op: m[1], args: m[2], stage });
  }
  return out;
}

function healthcheckCommand(): string[] {
  const hc = dockerfile().find((i) => i.op === 'HEALTHCHECK');
  assert.ok(hc, 'HEALTHCHECK present');
  const json = /CMD\s+(\[.*\])\s*$/.exec(hc.args);
  assert.ok(json, 'HEALTHCHECK uses the exec form');
  return JSON.parse(json[1]) as string[];
}

const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill('SIGTERM');
});

async function listen(handler: http.RequestListener): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Runs the image's HEALTHCHECK command with this Node (asynchronously: the probed server is in-process). */
async function runHealthcheck(adminPort: number): Promise<number | null> {
  const [bin, ...args] = healthcheckCommand();
  assert.equal(bin, 'node');
  const child = spawn(process.execPath, args, {
    env: { ...process.env, MESH_PEP_ADMIN_ADDRESS: `0.0.0.0:${adminPort}` },
    stdio: 'ignore',
    timeout: 10_000,
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

/** Starts envoy/demo-agents/agent.mjs on a free loopback port; resolves once it is listening. */
async function startAgent(env: Record<string, string>): Promise<number> {
  const child = spawn(process.execPath, [repoPath('envoy', 'demo-agents', 'agent.mjs')], {
    env: { ...process.env, ...env, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on :(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`demo agent exited (${String(code)}): ${out}`)));
  });
}

describe('Dockerfile', () => {
  const steps = dockerfile();

  it('builds on a maintained Node line pinned by digest, checks the version, and carries OCI labels', () => {
    const text = readRepoFile('Dockerfile');
    const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(text)?.[1] ?? '';
    assert.match(image, /^node:(2[2-9]|[3-9]\d)-[a-z]+-slim@sha256:[0-9a-f]{64}$/, 'Node 22 or later, by digest');
    const version = /^ARG NODE_VERSION=(v\d+\.\d+\.\d+)$/m.exec(text)?.[1];
    assert.ok(version && image.startsWith(`node:${version.slice(1).split('.')[0]}-`), 'the version check names the same major');
    for (const stage of ['build', 'runtime']) {
      const runs = steps.filter((s) => s.stage === stage && s.op === 'RUN').map((s) => s.args);
      assert.ok(runs.includes('test "$(node --version)" = "${NODE_VERSION}"'), `${stage} checks the Node version`);
    }
    const labels = steps.filter((s) => s.stage === 'runtime' && s.op === 'LABEL').map((s) => s.args).join(' ');
    for (const key of ['title', 'description', 'version', 'revision', 'licenses', 'source', 'base.name']) {
      assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key.replace('.', '\\.')}="`), key);
    }
  });

  it('is multi-stage: build compiles with dev deps, runtime installs production deps only', () => {
    const stages = steps.filter((s) => s.op === 'FROM').map((s) => s.stage);
    assert.deepEqual(stages, ['build', 'runtime']);
    const run = (stage: string) => steps.filter((s) => s.stage === stage && s.op === 'RUN').map((s) => s.args).join('\n');
    assert.match(run('build'), /npm ci\b/);
    assert.match(run('build'), /tsc -p tsconfig\.json/);
    assert.match(run('runtime'), /npm ci --omit=dev --ignore-scripts/);
    assert.doesNotMatch(run('runtime'), /npm (install|i)\b/);
    const copies = steps.filter((s) => s.stage === 'runtime' && s.op === 'COPY').map((s) => s.args);
    assert.ok(copies.includes('--from=build /src/dist/src ./dist/src'));
    for (const dir of ['proto', 'config']) assert.ok(copies.includes(`${dir} ./${dir}`), `runtime copies ${dir}/`);
  });

  it('copies only paths that exist and that .dockerignore does not exclude', () => {
    const ignored = readRepoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const must of ['node_modules', 'dist', '.mesh-pep', '.git']) assert.ok(ignored.includes(must), `.dockerignore lists ${must}`);
    const sources = steps.filter((s) => s.op === 'COPY' && !s.args.startsWith('--from')).flatMap((s) => s.args.split(/\s+/).slice(0, -1));
    for (const source of sources) {
      assert.ok(fs.existsSync(repoPath(source)), `${source} exists`);
      assert.ok(!ignored.includes(source), `${source} is not excluded from the build context`);
    }
  });

  it('runs as a numeric non-root user, exposes the server ports and starts the CLI', () => {
    const runtime = steps.filter((s) => s.stage === 'runtime');
    const user = runtime.filter((s) => s.op === 'USER').at(-1);
    assert.ok(user);
    assert.match(user.args, /^[1-9]\d*(:[1-9]\d*)?$/);
    const exposed = runtime.filter((s) => s.op === 'EXPOSE').flatMap((s) => s.args.split(/\s+/)).map(Number);
    assert.deepEqual(exposed.sort(), [SERVER.grpcPort, SERVER.adminPort].sort());
    const entry = runtime.find((s) => s.op === 'ENTRYPOINT');
    assert.ok(entry);
    const pkg = JSON.parse(readRepoFile('package.json')) as { bin: Record<string, string>; scripts: Record<string, string> };
    // The image's one process, and `npm start`, run with the V8 flags cluster workers get.
    assert.deepEqual(JSON.parse(entry.args), ['node', ...WORKER_V8_FLAGS, pkg.bin['mesh-pep']]);
    assert.equal(pkg.scripts.start, ['node', ...WORKER_V8_FLAGS, pkg.bin['mesh-pep'], 'serve'].join(' '));
    for (const step of steps) assert.doesNotMatch(step.args, /\b(curl|wget)\b/, 'no curl/wget: slim images lack them');
  });

  it('HEALTHCHECK really probes /healthz with Node fetch: 0 when healthy, 1 otherwise', async () => {
    const paths: string[] = [];
    const healthy = await listen((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(req.url === SERVER.adminPaths.liveness ? 200 : 404).end();
    });
    const failing = await listen((_req, res) => res.writeHead(503).end());
    try {
      assert.equal(await runHealthcheck(healthy.port), 0);
      assert.deepEqual(paths, [SERVER.adminPaths.liveness]);
      assert.equal(await runHealthcheck(failing.port), 1);
    } finally {
      await healthy.close();
      await failing.close();
    }
    assert.equal(await runHealthcheck(healthy.port), 1, 'nothing listening');
  });
});

describe('envoy/docker-compose.yaml', () => {
  const compose = asObject(readYaml('envoy', 'docker-compose.yaml'), 'compose');
  const services = asObject(compose['services'], 'services');
  const bootstrap = readYaml('envoy', 'envoy.yaml');

  function env(service: string): Json {
    return asObject(dig(services, [service, 'environment']), `${service}.environment`);
  }

  it('runs Envoy with envoy/envoy.yaml, mesh-pep from the Dockerfile, Jaeger with OTLP and the demo agents', () => {
    assert.deepEqual(Object.keys(services).sort(), ['analyst', 'envoy', 'jaeger', 'mesh-pep', 'orchestrator', 'retriever']);
    assert.deepEqual(dig(services, 'mesh-pep.build'), { context: '..', dockerfile: 'Dockerfile' });
    assert.ok(asArray(dig(services, 'envoy.volumes'), 'volumes').includes('./envoy.yaml:/etc/envoy/envoy.yaml:ro'));
    assert.deepEqual(asArray(dig(services, 'envoy.command'), 'command').slice(0, 3), ['envoy', '-c', '/etc/envoy/envoy.yaml']);
    assert.equal(env('jaeger')['COLLECTOR_OTLP_ENABLED'], 'true');
    assert.equal(dig(services, 'envoy.depends_on.mesh-pep.condition'), 'service_healthy');
  });

  it('every Envoy cluster address is a compose service on the port it listens on', () => {
    const expected: Record<string, string> = {
      mesh_pep: `mesh-pep:${SERVER.grpcPort}`,
      jaeger_otlp: 'jaeger:4317',
      orchestrator: 'orchestrator:8080',
      retriever: 'retriever:8080',
      analyst: 'analyst:8080',
    };
    for (const cluster of asArray(dig(bootstrap, 'static_resources.clusters'), 'clusters')) {
      const name = String(asObject(cluster, 'cluster')['name']);
      const address = asObject(dig(cluster, 'load_assignment.endpoints.0.lb_endpoints.0.endpoint.address.socket_address'), 'address');
      assert.equal(`${String(address['address'])}:${String(address['port_value'])}`, expected[name], `cluster ${name}`);
      assert.ok(String(address['address']) in services, `${String(address['address'])} is a compose service`);
    }
    // The agents listen on the agent script's default port, which the clusters use.
    assert.match(readRepoFile('envoy', 'demo-agents', 'agent.mjs'), /process\.env\.PORT \?\? 8080/);
    for (const agent of ['orchestrator', 'retriever', 'analyst']) assert.equal(env(agent)['PORT'], undefined);
    assert.equal(env('mesh-pep')['MESH_PEP_GRPC_ADDRESS'], undefined, 'mesh-pep keeps its default gRPC port');
  });

  it('publishes the Envoy listener and admin ports the bootstrap defines, and sends mesh-pep spans to Jaeger', () => {
    const listener = dig(bootstrap, 'static_resources.listeners.0.address.socket_address.port_value');
    const admin = dig(bootstrap, 'admin.address.socket_address.port_value');
    const published = asArray(dig(services, 'envoy.ports'), 'ports').map((p) => String(p).split(':')[1]);
    assert.deepEqual(published, [String(listener), String(admin)]);
    assert.equal(env('mesh-pep')['OTEL_EXPORTER_OTLP_ENDPOINT'], 'http://jaeger:4317');
    assert.equal(env('mesh-pep')['OTEL_EXPORTER_OTLP_PROTOCOL'], 'grpc');
    assert.equal(env('mesh-pep')['OTEL_TRACES_EXPORTER'], 'otlp');
  });

  it('agent modes match their roles: the retriever is a store, the others echo', () => {
    assert.equal(env('retriever')['AGENT_MODE'], 'store');
    assert.equal(env('orchestrator')['AGENT_MODE'], 'echo');
    assert.equal(env('analyst')['AGENT_MODE'], 'echo');
  });
});

describe('envoy/demo-agents/agent.mjs', () => {
  it('store mode keeps bodies verbatim and returns them with their content type', async () => {
    const port = await startAgent({ AGENT_NAME: 'retriever', AGENT_MODE: 'store' });
    const put = await fetch(`http://127.0.0.1:${port}/items/note-1`, { method: 'PUT', headers: { 'content-type': 'application/jose' }, body: 'eyJhbGciOiJkaXIifQ..iv.ct.tag' });
    assert.equal(put.status, 201);
    assert.deepEqual(await put.json(), { agent: 'retriever', stored: 'note-1', bytes: 29, stored_content_type: 'application/jose', stored_dot_separated_parts: 5 });
    const got = await fetch(`http://127.0.0.1:${port}/items/note-1`);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-type'), 'application/jose');
    assert.equal(await got.text(), 'eyJhbGciOiJkaXIifQ..iv.ct.tag');
    assert.equal(got.headers.get('server'), 'demo-retriever', 'sets a topology-revealing header for masking to remove');
    assert.equal((await fetch(`http://127.0.0.1:${port}/items/missing`)).status, 404);
  });

  it('echo mode reports the headers and body that arrived', async () => {
    const port = await startAgent({ AGENT_NAME: 'analyst', AGENT_MODE: 'echo' });
    const res = await fetch(`http://127.0.0.1:${port}/score?x=1`, { method: 'POST', headers: { 'x-mesh-domain': 'pii_inference', 'content-type': 'text/plain' }, body: 'hello' });
    const echoed = (await res.json()) as { agent: string; received: { method: string; path: string; headers: Record<string, string>; body: string } };
    assert.equal(echoed.agent, 'analyst');
    assert.equal(echoed.received.method, 'POST');
    assert.equal(echoed.received.path, '/score?x=1');
    assert.equal(echoed.received.headers['x-mesh-domain'], 'pii_inference');
    assert.equal(echoed.received.body, 'hello');
  });
});
