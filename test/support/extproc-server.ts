import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/server/start.js';
import { createLogger } from '../../src/telemetry/logger.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { loadPolicyFile } from '../../src/config/load.js';
import type { CompiledPolicy, DomainPolicy } from '../../src/config/types.js';
import { tierModule, type TierModule } from '../../src/protect/registry.js';
import { bindDecision, bindingHost, type BoundFields } from '../../src/policy/binding.js';

/** The route of a request as Check and ext_proc both see it (what the binding MAC covers). */
export interface BoundRoute {
  method: string;
  path: string;
  /** `:authority`; '' when the request carries none. */
  authority?: string;
  /** The caller's mTLS principal as Check saw it. */
  principal?: string;
}

/**
 * The request headers Check sets on an allow, with the `x-mesh-binding` MAC under the running server's
 * key (`opts.key`, default: the server startTestServer started last) for this route, for exchanges
 * that rely on ext_proc's header fallback instead of forwarded metadata.
 */
export function checkedHeaders(
  domain: string,
  route: BoundRoute,
  opts: { role?: string; agent?: string; key?: Uint8Array } = {},
): Array<[string, string]> {
  const { role = 'RETRIEVER', agent = 'ap_0123456789abcdef0123456789abcdef' } = opts;
  const bindingKey = opts.key ?? serverBindingKey;
  const decisionId = randomUUID();
  const out: Array<[string, string]> = [
    ['x-mesh-domain', domain],
    ['x-agent-role', role],
    [agent.startsWith('ap_') ? 'x-agent-pseudonym' : 'x-agent-id', agent],
    ['x-mesh-decision-id', decisionId],
  ];
  if (bindingKey) out.push(['x-mesh-binding', bindDecision(bindingKey, boundFields({ decisionId, domain, role, agent }, route), Date.now())]);
  return out;
}

function boundFields(f: { decisionId: string; domain: string; role: string; agent: string }, route: BoundRoute): BoundFields {
  return { ...f, host: bindingHost(route.authority ?? ''), path: route.path, method: route.method, principal: route.principal ?? '' };
}

/**
 * ext_authz dynamic metadata as Check writes it for the exchange's request (`EnvoyPeer`'s
 * `authzMetadata` as a function of the request headers): the given fields plus the `binding` MAC for
 * that request's route under the running server's key.
 */
export function boundMetadata(
  fields: Record<string, string>,
  opts: { key?: Uint8Array; principal?: string } = {},
): (requestHeaders: ReadonlyArray<readonly [string, string]>) => Record<string, string> {
  return (requestHeaders) => {
    const key = opts.key ?? serverBindingKey;
    if (!key) throw new Error('boundMetadata needs a running test server or opts.key');
    const get = (n: string) => requestHeaders.find(([k]) => k === n)?.[1];
    const route: BoundRoute = { method: get(':method') ?? '', path: get(':path') ?? '', authority: get(':authority') ?? get('host') ?? '', principal: opts.principal ?? '' };
    const f = {
      decisionId: fields['decision_id'] ?? '',
      domain: fields['domain'] ?? '',
      role: fields['role'] ?? '',
      agent: fields['agent_pseudonym'] ?? fields['agent_id'] ?? '',
    };
    return {
      ...fields,
      binding: bindDecision(key, boundFields(f, route), Date.now()),
      ...(opts.principal ? { source_principal: opts.principal } : {}),
    };
  };
}

/** Set by startTestServer: put()/get() carry headers as Check would have set them for this server. */
let serverBindingKey: Uint8Array | undefined;

/**
 * The real mesh-pep server on 127.0.0.1 with a policy written to a temp dir and development keys
 * minted at start (nothing committed). Two RETRIEVAL domains: `agent_memory` (masking, small body
 * limit) and `notes` (no masking), plus whatever `extraDomains` adds.
 */
export interface TestServer {
  server: RunningServer;
  address: string;
  dir: string;
  policyFile: string;
  keyringOf(domain: string): string;
  auditRecords(): Promise<AuditRecord[]>;
  close(): Promise<void>;
}

export const TEST_POLICY = `
security_mesh:
  global:
    credential_rotation_interval_ms: 600000
  identity:
    issuer: "https://issuer.test"
    audiences: ["agent-mesh"]
    jwks_file: keys/issuer.jwks.json
  keys:
    dir: keys
  audit:
    file: audit/audit.jsonl
  domains:
    - name: agent_memory
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER]
      metadata_masking: true
      audit_level: FULL_MESH
      max_body_bytes: 4096
      mask_response_headers: [x-store-node]
    - name: notes
      tier: RETRIEVAL
      allowed_roles: [RETRIEVER]
      metadata_masking: false
      audit_level: FULL_MESH
`;

/** TEST_POLICY compiled in a temp dir, its RETRIEVAL domain `notes` and that tier's module (no keys made). */
export interface NotesDomain {
  dir: string;
  policy: CompiledPolicy;
  domain: DomainPolicy;
  mod: TierModule;
  cleanup(): Promise<void>;
}

export async function notesDomain(prefix: string): Promise<NotesDomain> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await writeFile(join(dir, 'policy.yaml'), TEST_POLICY);
  const policy = (await loadPolicyFile(join(dir, 'policy.yaml'))).policy;
  return {
    dir,
    policy,
    domain: policy.domainsByName.get('notes')!,
    mod: await tierModule('RETRIEVAL'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export async function startTestServer(policyText = TEST_POLICY): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-pep-extproc-'));
  const policyFile = join(dir, 'policy.yaml');
  await writeFile(policyFile, policyText);
  let server: RunningServer;
  try {
    server = await startServer({
      configFile: policyFile,
      grpcAddress: '127.0.0.1:0',
      adminAddress: '127.0.0.1:0',
      initDevKeys: true,
      log: createLogger('silent'),
      drainTimeoutMs: 2000,
    });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  serverBindingKey = server.runtime.pseudonyms.bindingKey();
  return {
    server,
    address: `127.0.0.1:${server.grpcPort}`,
    dir,
    policyFile,
    keyringOf: (domain) => join(dir, 'keys', `${domain}.jwks.json`),
    async auditRecords() {
      const text = await readFile(join(dir, 'audit', 'audit.jsonl'), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as AuditRecord);
    },
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A tiny object store: the callee in round-trip tests. It keeps exactly the bytes it was sent. */
export class MemoryStore {
  readonly objects = new Map<string, { body: Buffer; contentType: string | undefined }>();

  handle = (req: { headers: Array<[string, string]>; body: Buffer }) => {
    const get = (n: string) => req.headers.find(([k]) => k === n)?.[1];
    const path = get(':path') ?? '/';
    if (get(':method') === 'PUT') {
      this.objects.set(path, { body: Buffer.from(req.body), contentType: get('content-type') });
      return { status: 204, headers: [] as Array<[string, string]> };
    }
    const hit = this.objects.get(path);
    if (!hit) {
      const body = Buffer.from('{"error":"not found"}');
      return { status: 404, headers: [['content-type', 'application/json'], ['content-length', String(body.length)]] as Array<[string, string]>, body };
    }
    return {
      status: 200,
      headers: [
        ['content-type', hit.contentType ?? 'application/octet-stream'],
        ['content-length', String(hit.body.length)],
        ['server', 'memstore/1.0'],
        ['x-envoy-upstream-service-time', '3'],
        ['x-store-node', 'node-7.rack-2'],
        ['etag', '"v1"'],
      ] as Array<[string, string]>,
      body: hit.body,
    };
  };
}

export function put(path: string, body: Buffer, contentType: string, domain = 'agent_memory'): { headers: Array<[string, string]>; body: Buffer } {
  return {
    headers: [
      [':method', 'PUT'],
      [':path', path],
      [':authority', 'memory.agents.svc'],
      [':scheme', 'http'],
      ['content-type', contentType],
      ['content-length', String(body.length)],
      ...checkedHeaders(domain, { method: 'PUT', path, authority: 'memory.agents.svc' }),
    ],
    body,
  };
}

export function get(path: string, domain = 'agent_memory'): { headers: Array<[string, string]> } {
  return {
    headers: [
      [':method', 'GET'],
      [':path', path],
      [':authority', 'memory.agents.svc'],
      [':scheme', 'http'],
      ...checkedHeaders(domain, { method: 'GET', path, authority: 'memory.agents.svc' }),
    ],
  };
}
