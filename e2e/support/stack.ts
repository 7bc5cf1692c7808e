/**
 * One end-to-end stack per test file: the shipped envoy/envoy.yaml run by a real Envoy 1.40, mesh-pep
 * as its own process (`mesh-pep serve`) with the bundled policy plus the suite's extra domains, and one
 * recording upstream behind every agent cluster. Cases of a file share it; starting it is most of the
 * suite's wall time.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { loadPolicyFile } from '../../src/config/load.js';
import type { CompiledPolicy } from '../../src/config/types.js';
import { mintPolicyToken } from '../../src/identity/dev-issuer.js';
import { openForOperator } from '../../src/protect/computation/index.js';
import { FheAnalyst } from '../../src/protect/fhe/index.js';
import {
  connectionManager,
  ensureEnvoy,
  readShipped,
  renderEnvoyConfig,
  startEnvoy,
  startMeshPep,
  validateEnvoyConfig,
  REPO_ROOT,
  type EnvoyBinary,
  type JsonObject,
  type MeshPepProcess,
  type RunningEnvoy,
  type StartEnvoyOptions,
} from '../../tools/envoy/index.js';
import { RecordingUpstream } from './upstream.js';

/** sha256 of "mesh-pep development enclave": the bundled policy's trusted measurement. */
export const DEV_MEASUREMENT = 'sha256:b350ad9b51af9eb316c126fea23fd2ba77e6cb264a3dfb3ee369122d065295ee';
export const REVOKED_AGENT = 'agent-revoked-7';

/**
 * Domains the bundled policy lacks but the scenarios need: MPC, a small body limit, trust zones,
 * revocation. The bundled four domains stay exactly as shipped.
 */
const EXTRA_DOMAINS = [
  {
    name: 'mpc_analytics',
    tier: 'COMPUTATION',
    allowed_roles: ['ANALYST'],
    metadata_masking: true,
    computation: { mode: 'mpc', parties: [{ name: 'bank_a', jwks_file: 'state/parties/bank_a.jwks.json' }, { name: 'bank_b', jwks_file: 'state/parties/bank_b.jwks.json' }] },
  },
  { name: 'small_limit', tier: 'RETRIEVAL', allowed_roles: ['ORCHESTRATOR'], metadata_masking: false, max_body_bytes: 1024 },
  { name: 'segmented', tier: 'RETRIEVAL', allowed_roles: ['ORCHESTRATOR'], zones: { allow: [{ from: 'agents' }] } },
];

/** Routes for the extra domains, put before the shipped ones (a deliberate, named change to the file). */
const EXTRA_ROUTES: Array<{ prefix: string; cluster: string; domain: string }> = [
  { prefix: '/mpc/', cluster: 'analyst', domain: 'mpc_analytics' },
  { prefix: '/small/', cluster: 'orchestrator', domain: 'small_limit' },
  { prefix: '/segmented/', cluster: 'orchestrator', domain: 'segmented' },
];

export async function writeSuitePolicy(dir: string): Promise<string> {
  const text = await readFile(path.join(REPO_ROOT, 'config', 'security_mesh.yaml'), 'utf8');
  // Keys and audit in this run's own folder, never in a shared one.
  const doc = YAML.parse(text.replaceAll('../.mesh-pep/', 'state/')) as { security_mesh: Record<string, unknown> & { domains: unknown[] } };
  doc.security_mesh.domains.push(...structuredClone(EXTRA_DOMAINS));
  doc.security_mesh['zones'] = [{ name: 'agents', principals: ['spiffe://cluster.local/ns/agents/sa/*'] }];
  doc.security_mesh['revocation'] = { agents: [REVOKED_AGENT] };
  const file = path.join(dir, 'policy.yaml');
  await writeFile(file, YAML.stringify(doc));
  return file;
}

function addRoutes(cfg: JsonObject): void {
  const hcm = connectionManager(cfg);
  const vhost = ((hcm.route_config as JsonObject).virtual_hosts as JsonObject[])[0]!;
  const routes = vhost.routes as JsonObject[];
  routes.unshift(
    ...EXTRA_ROUTES.map((r) => ({
      match: { prefix: r.prefix },
      route: { cluster: r.cluster, prefix_rewrite: '/', timeout: '10s' },
      decorator: { operation: r.domain, propagate: false },
      typed_per_filter_config: {
        'envoy.filters.http.ext_authz': {
          '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
          check_settings: { context_extensions: { domain: r.domain } },
        },
      },
    })),
  );
}

export interface TokenOptions {
  attested?: boolean;
  spiffe?: string;
  ttlMs?: number;
  /** Mint as of this time (ms epoch): for expired or too-old credentials. */
  now?: number;
}

export interface Stack {
  bin: EnvoyBinary;
  envoy: RunningEnvoy;
  pep: MeshPepProcess;
  upstream: RecordingUpstream;
  policy: CompiledPolicy;
  policyFile: string;
  dir: string;
  /** Envoy's listener port. */
  port: number;
  token(agentId: string, role: string, opts?: TokenOptions): Promise<string>;
  /** The shipped config rendered for this stack, with a further named change, run as another Envoy. */
  extraEnvoy(patch: (cfg: JsonObject) => void, opts?: Partial<StartEnvoyOptions>): Promise<RunningEnvoy>;
  /** mesh-pep again on the same ports (after `pep.stop()`), so Envoy's cluster finds it. */
  restartPep(): Promise<MeshPepProcess>;
  stop(): Promise<void>;
}

export interface StackOptions {
  /** Another named change to the shipped Envoy config for the whole file. */
  envoyPatch?: (cfg: JsonObject) => void;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const bin = await ensureEnvoy();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-e2e-'));
  const extra: RunningEnvoy[] = [];
  let pep: MeshPepProcess | undefined;
  let upstream: RecordingUpstream | undefined;
  let envoy: RunningEnvoy | undefined;
  const cleanup = async () => {
    for (const e of [...extra, envoy]) await e?.stop();
    await pep?.stop();
    await upstream?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const policyFile = await writeSuitePolicy(dir);
    const pepOpts = { configFile: policyFile, extraArgs: ['--init-keys'], readyTimeoutMs: 120_000 };
    pep = await startMeshPep(pepOpts);
    const { policy } = await loadPolicyFile(policyFile);
    upstream = await new RecordingUpstream().start();
    upstream.openEnclave = async (body) => {
      // The enclave's own private keys (TEE) or every party's (MPC), read from the dev key files.
      const domain = body.toString('latin1').trim().split('.').length === 5 ? policy.domainsByName.get('pii_inference')! : policy.domainsByName.get('mpc_analytics')!;
      const plain = await openForOperator(body, { policy, domain, keyFiles: [] });
      return JSON.parse(Buffer.from(plain).toString('utf8')) as unknown;
    };
    const weights = [0.5, -1, 2];
    upstream.scoreModel = async (doc) => {
      // Public material only: the model service never holds the secret key.
      const analyst = await FheAnalyst.open(policy.keys.dir, 'financial_models');
      return { score: await analyst.dot((doc as { features: unknown }).features, weights, 1) };
    };
    const up = { host: '127.0.0.1', port: upstream.port };
    const clusters = { mesh_pep: { host: '127.0.0.1', port: pep.grpcPort }, jaeger_otlp: { host: '127.0.0.1', port: 9 }, orchestrator: up, retriever: up, analyst: up };
    const render = (patch?: (cfg: JsonObject) => void) =>
      renderEnvoyConfig(readShipped(), {
        clusters,
        patch: (cfg) => {
          addRoutes(cfg);
          opts.envoyPatch?.(cfg);
          patch?.(cfg);
        },
      });
    const cfg = render();
    await validateEnvoyConfig(bin.path, cfg);
    envoy = await startEnvoy(cfg, { binary: bin.path });
    const pepRef = { current: pep };
    const stack: Stack = {
      bin,
      envoy,
      get pep() {
        return pepRef.current;
      },
      upstream,
      policy,
      policyFile,
      dir,
      port: envoy.port(),
      token: (agentId, role, t = {}) =>
        mintPolicyToken(policy, {
          agentId,
          role,
          ttlMs: t.ttlMs ?? 120_000,
          ...(t.attested ? { attestation: DEV_MEASUREMENT } : {}),
          ...(t.spiffe ? { spiffeId: t.spiffe } : {}),
          ...(t.now !== undefined ? { now: t.now } : {}),
        }),
      async extraEnvoy(patch, envoyOpts = {}) {
        const c = render(patch);
        await validateEnvoyConfig(bin.path, c);
        const e = await startEnvoy(c, { ...envoyOpts, binary: bin.path });
        extra.push(e);
        return e;
      },
      async restartPep() {
        pepRef.current = await startMeshPep({ ...pepOpts, grpcPort: pepRef.current.grpcPort, adminPort: pepRef.current.adminPort });
        pep = pepRef.current;
        return pep;
      },
      stop: cleanup,
    };
    return stack;
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Bearer header for a token. */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
