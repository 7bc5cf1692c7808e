import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { loadEnvoySchema, type EnvoySchema } from './support/envoy-schema.js';
import { chartValues, renderChart, type RenderedChart } from './support/helm-chart.js';
import { validateObject } from './support/k8s-schema.js';
import { asArray, asObject, dig, parseYaml, readRepoFile, repoPath, type Json } from './support/repo.js';
import { SERVER } from './support/server-contract.js';

const CHART = repoPath('helm', 'mesh-pep');
const RELEASE = { name: 'mesh-pep', namespace: 'mesh-pep' };

/** Envoy message each EnvoyFilter `applyTo` patches (istio.io EnvoyFilter reference). */
const APPLY_TO_MESSAGE: Record<string, string> = {
  LISTENER: 'envoy.config.listener.v3.Listener',
  FILTER_CHAIN: 'envoy.config.listener.v3.FilterChain',
  NETWORK_FILTER: 'envoy.config.listener.v3.Filter',
  HTTP_FILTER: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
  ROUTE_CONFIGURATION: 'envoy.config.route.v3.RouteConfiguration',
  VIRTUAL_HOST: 'envoy.config.route.v3.VirtualHost',
  HTTP_ROUTE: 'envoy.config.route.v3.Route',
  CLUSTER: 'envoy.config.cluster.v3.Cluster',
  EXTENSION_CONFIG: 'envoy.config.core.v3.TypedExtensionConfig',
  BOOTSTRAP: 'envoy.config.bootstrap.v3.Bootstrap',
  LISTENER_FILTER: 'envoy.config.listener.v3.ListenerFilter',
};

/** Fields of Istio's EnvoyExternalAuthorizationGrpcProvider (istio/api mesh/v1alpha1/config.proto). */
const ISTIO_GRPC_PROVIDER_FIELDS = ['service', 'port', 'timeout', 'failOpen', 'statusOnError', 'includeRequestBodyInCheck'];

/** Overrides that switch on every optional template, so each gets rendered and validated. */
const EVERYTHING_ON: Json = {
  fullnameOverride: 'pep',
  autoscaling: { enabled: false },
  replicaCount: 3,
  podAntiAffinity: 'hard',
  podAnnotations: { 'example.com/team': 'security' },
  podLabels: { tier: 'pep' },
  imagePullSecrets: [{ name: 'registry' }],
  priorityClassName: 'system-cluster-critical',
  nodeSelector: { 'kubernetes.io/os': 'linux' },
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'pep', effect: 'NoSchedule' }],
  topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'mesh-pep' } } }],
  extraEnv: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=768' }],
  serviceAccount: { annotations: { 'example.com/role': 'pep' } },
  tracing: { otlpEndpoint: 'http://jaeger-collector.observability.svc.cluster.local:4317' },
  audit: { existingClaim: 'mesh-pep-audit' },
  keys: { issuerJwks: { secretName: '' }, domainKeys: { existingClaim: 'mesh-pep-keys' } },
  policy: { securityMesh: { identity: { jwks_file: null, jwks_uri: 'https://issuer.example/.well-known/jwks.json' } } },
  istio: {
    istioOperatorOverlay: true,
    telemetry: { enabled: true },
    extProc: { requestBodyMode: 'STREAMED' },
    agents: { workloads: [{ name: 'gateway-agent', selector: { app: 'gateway-agent' }, domain: '', paths: ['/v1/memory/*'] }] },
  },
};

/** Overrides that switch every optional template off. */
const MINIMAL: Json = {
  serviceAccount: { create: false },
  podDisruptionBudget: { enabled: false },
  autoscaling: { enabled: false },
  networkPolicy: { enabled: false },
  podAntiAffinity: 'none',
  policy: { existingConfigMap: 'operator-policy' },
  istio: { enabled: false },
};

let envoy: EnvoySchema;
let chart: RenderedChart;

before(() => {
  envoy = loadEnvoySchema();
  chart = renderChart(CHART, RELEASE);
});

function find(rendered: RenderedChart, kind: string, name?: string): Json[] {
  return rendered.objects.filter((o) => o['kind'] === kind && (name === undefined || dig(o, 'metadata.name') === name));
}

function only(rendered: RenderedChart, kind: string): Json {
  const all = find(rendered, kind);
  assert.equal(all.length, 1, `exactly one ${kind}`);
  return all[0];
}

function validateAll(rendered: RenderedChart): string[] {
  return rendered.objects.flatMap((o) => validateObject(o).map((e) => `${String(o['kind'])}/${String(dig(o, 'metadata.name'))}: ${e}`));
}

function envoyPatchErrors(filter: Json): string[] {
  const errors: string[] = [];
  asArray(dig(filter, 'spec.configPatches'), 'configPatches').forEach((raw, i) => {
    const patch = asObject(raw, 'patch');
    const message = APPLY_TO_MESSAGE[String(patch['applyTo'])];
    if (!message) {
      errors.push(`configPatches[${i}]: no Envoy message known for applyTo ${String(patch['applyTo'])}`);
      return;
    }
    const operation = String(dig(patch, 'patch.operation'));
    const partial = operation === 'MERGE';
    for (const e of envoy.check(message, dig(patch, 'patch.value'), { partial })) errors.push(`configPatches[${i}] ${e}`);
  });
  return errors;
}

function container(rendered: RenderedChart): Json {
  return asObject(dig(only(rendered, 'Deployment'), 'spec.template.spec.containers.0'), 'container');
}

describe('helm/mesh-pep values', () => {
  const schema = JSON.parse(readRepoFile('helm', 'mesh-pep', 'values.schema.json')) as object;
  const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);

  it('values.yaml and the override sets used below satisfy values.schema.json', () => {
    for (const [label, overrides] of [['defaults', {}], ['everything on', EVERYTHING_ON], ['minimal', MINIMAL]] as const) {
      const ok = validate(chartValues(CHART, overrides as Json));
      assert.ok(ok, `${label}: ${JSON.stringify(validate.errors)}`);
    }
  });

  it('rejects a misspelt key and a body mode the server does not implement', () => {
    assert.equal(validate(chartValues(CHART, { replicaCont: 3 })), false);
    assert.match(JSON.stringify(validate.errors), /additionalProperties.*replicaCont/);
    assert.equal(validate(chartValues(CHART, { istio: { extProc: { requestBodyMode: 'BUFFERED_PARTIAL' } } })), false);
    assert.equal(validate(chartValues(CHART, { istio: { authzTimeout: '500ms' } })), false);
    for (const workers of [0, 'all', 1.5]) assert.equal(validate(chartValues(CHART, { workers })), false, `workers: ${workers}`);
  });

  it('workers reach the server as MESH_PEP_WORKERS: auto by default, a number when set', () => {
    const env = (r: RenderedChart) =>
      asArray(container(r)['env'], 'env')
        .map((e) => asObject(e, 'env var'))
        .find((e) => e['name'] === 'MESH_PEP_WORKERS')?.['value'];
    assert.equal(env(chart), 'auto');
    assert.ok(validate(chartValues(CHART, { workers: 3 })));
    assert.equal(env(renderChart(CHART, RELEASE, { workers: 3 })), '3');
  });
});

describe('helm/mesh-pep rendered objects', () => {
  it('default render: every object passes its Kubernetes/Istio schema with no unknown field', () => {
    const kinds = chart.objects.map((o) => String(o['kind'])).sort();
    assert.deepEqual([...new Set(kinds)], [
      'AuthorizationPolicy', 'ConfigMap', 'Deployment', 'EnvoyFilter', 'HorizontalPodAutoscaler', 'NetworkPolicy',
      'PeerAuthentication', 'PodDisruptionBudget', 'Service', 'ServiceAccount',
    ]);
    assert.deepEqual(validateAll(chart), []);
  });

  it('every optional template on, and every one off, still renders valid objects', () => {
    const on = renderChart(CHART, RELEASE, EVERYTHING_ON);
    assert.deepEqual(validateAll(on), []);
    for (const kind of ['Telemetry', 'IstioOperator']) assert.equal(find(on, kind).length, 1, `${kind} rendered`);
    for (const filter of find(on, 'EnvoyFilter')) assert.deepEqual(envoyPatchErrors(filter), []);
    const volumes = asArray(dig(only(on, 'Deployment'), 'spec.template.spec.volumes'), 'volumes').map((v) => asObject(v, 'volume'));
    assert.deepEqual(volumes.find((v) => v['name'] === 'domain-keys')?.['persistentVolumeClaim'], { claimName: 'mesh-pep-keys', readOnly: true });
    assert.equal(volumes.find((v) => v['name'] === 'issuer-jwks'), undefined, 'no issuer Secret with jwks_uri');

    const off = renderChart(CHART, RELEASE, MINIMAL);
    assert.deepEqual(validateAll(off), []);
    assert.deepEqual(off.objects.map((o) => o['kind']).sort(), ['Deployment', 'Service']);
    assert.equal(dig(only(off, 'Deployment'), 'spec.template.spec.volumes.0.configMap.name'), 'operator-policy');
  });

  it('the strict object check catches a misspelt field the schemas alone accept', () => {
    const deployment = structuredClone(only(chart, 'Deployment'));
    const c = asObject(dig(deployment, 'spec.template.spec.containers.0'), 'container');
    c['imagee'] = c['image'];
    assert.deepEqual(validateObject(deployment), ['/spec/template/spec/containers/0/imagee: unknown field']);
    const policy = structuredClone(find(chart, 'AuthorizationPolicy')[0]);
    asObject(policy['spec'], 'spec')['acton'] = 'CUSTOM';
    assert.deepEqual(validateObject(policy), ['/spec/acton: unknown field']);
  });
});

describe('helm/mesh-pep Deployment and Service', () => {
  it('probes hit /healthz and /readyz on the admin port; the gRPC port matches the server', () => {
    const c = container(chart);
    const ports = Object.fromEntries(asArray(c['ports'], 'ports').map((p) => [String(asObject(p, 'port')['name']), asObject(p, 'port')['containerPort']]));
    assert.deepEqual(ports, { grpc: SERVER.grpcPort, admin: SERVER.adminPort });
    for (const probe of ['startupProbe', 'livenessProbe']) assert.deepEqual(dig(c, `${probe}.httpGet`), { path: SERVER.adminPaths.liveness, port: 'admin' });
    assert.deepEqual(dig(c, 'readinessProbe.httpGet'), { path: SERVER.adminPaths.readiness, port: 'admin' });
    assert.deepEqual(c['args'], ['serve', '--config', '/etc/mesh-pep/policy/security_mesh.yaml', '--grpc-address', `0.0.0.0:${SERVER.grpcPort}`, '--admin-address', `0.0.0.0:${SERVER.adminPort}`]);
    assert.equal(c['image'], 'ghcr.io/mesh-pep/mesh-pep:0.1.0', 'tag defaults to appVersion');
  });

  it('runs non-root with a read-only root filesystem, resources set and replicas spread', () => {
    const c = container(chart);
    assert.equal(dig(c, 'securityContext.readOnlyRootFilesystem'), true);
    assert.equal(dig(c, 'securityContext.allowPrivilegeEscalation'), false);
    assert.deepEqual(dig(c, 'securityContext.capabilities.drop'), ['ALL']);
    const pod = asObject(dig(only(chart, 'Deployment'), 'spec.template.spec'), 'pod');
    assert.equal(dig(pod, 'securityContext.runAsNonRoot'), true);
    assert.ok(Number(dig(pod, 'securityContext.runAsUser')) > 0);
    assert.ok(dig(c, 'resources.requests.cpu') && dig(c, 'resources.limits.memory'));
    const term = dig(pod, 'affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.podAffinityTerm');
    assert.deepEqual(dig(term, 'labelSelector.matchLabels'), dig(only(chart, 'Deployment'), 'spec.selector.matchLabels'));
    const hard = renderChart(CHART, RELEASE, { podAntiAffinity: 'hard' });
    assert.ok(dig(only(hard, 'Deployment'), 'spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution.0'));
  });

  it('Service: gRPC port named grpc with appProtocol grpc, selecting the Deployment pods', () => {
    const service = only(chart, 'Service');
    const grpc = asArray(dig(service, 'spec.ports'), 'ports').map((p) => asObject(p, 'port')).find((p) => p['name'] === 'grpc');
    assert.ok(grpc);
    assert.equal(grpc['appProtocol'], 'grpc');
    assert.equal(grpc['port'], SERVER.grpcPort);
    assert.equal(grpc['targetPort'], 'grpc');
    assert.deepEqual(dig(service, 'spec.selector'), dig(only(chart, 'Deployment'), 'spec.template.metadata.labels') && dig(only(chart, 'Deployment'), 'spec.selector.matchLabels'));
    const labels = asObject(dig(only(chart, 'Deployment'), 'spec.template.metadata.labels'), 'labels');
    for (const [k, v] of Object.entries(asObject(dig(service, 'spec.selector'), 'selector'))) assert.equal(labels[k], v);
  });

  it('the policy checksum annotation is the hash of the ConfigMap data and changes with the policy', () => {
    const policyText = String(dig(only(chart, 'ConfigMap'), ['data', 'security_mesh.yaml']));
    const annotation = dig(only(chart, 'Deployment'), ['spec', 'template', 'metadata', 'annotations', 'checksum/policy']);
    assert.equal(annotation, createHash('sha256').update(policyText.replace(/\n$/, '')).digest('hex'));
    const changed = renderChart(CHART, RELEASE, { policy: { securityMesh: { global: { audit_scope: 'OUTPUT_ONLY' } } } });
    assert.notEqual(dig(only(changed, 'Deployment'), ['spec', 'template', 'metadata', 'annotations', 'checksum/policy']), annotation);
  });

  it('every file the policy names lies under a volume the container mounts', () => {
    const policy = asObject(parseYaml(String(dig(only(chart, 'ConfigMap'), ['data', 'security_mesh.yaml'])), 'policy'), 'policy');
    const mounts = asArray(container(chart)['volumeMounts'], 'mounts').map((m) => String(asObject(m, 'mount')['mountPath']));
    for (const file of [
      dig(policy, 'security_mesh.identity.jwks_file'),
      dig(policy, 'security_mesh.keys.dir'),
      dig(policy, 'security_mesh.keys.pseudonym_key_file'),
      dig(policy, 'security_mesh.audit.file'),
    ]) {
      assert.ok(mounts.some((m) => String(file) === m || String(file).startsWith(`${m}/`)), `${String(file)} is under one of ${mounts.join(', ')}`);
    }
  });

  it('mesh-pep accepts the chart policy (mesh-pep validate)', (t) => {
    const cli = repoPath('dist', 'src', 'cli', 'main.js');
    if (!fs.existsSync(cli)) return t.skip('mesh-pep CLI not built');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-pep-chart-'));
    try {
      const file = path.join(dir, 'security_mesh.yaml');
      fs.writeFileSync(file, String(dig(only(chart, 'ConfigMap'), ['data', 'security_mesh.yaml'])));
      const run = spawnSync(process.execPath, [cli, 'validate', '--config', file], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 0, `mesh-pep validate: ${run.stdout}${run.stderr}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('NetworkPolicy admits callers on the gRPC and admin ports only', () => {
    const policy = only(chart, 'NetworkPolicy');
    assert.deepEqual(dig(policy, 'spec.podSelector.matchLabels'), dig(only(chart, 'Deployment'), 'spec.selector.matchLabels'));
    const ports = asArray(dig(policy, 'spec.ingress'), 'ingress').map((r) => dig(r, 'ports.0.port'));
    assert.deepEqual(ports, ['grpc', 'admin']);
  });
});

describe('helm/mesh-pep Istio resources', () => {
  const FQDN = 'mesh-pep.mesh-pep.svc.cluster.local';

  it('EnvoyFilter patches are valid Envoy config (strict proto check) inserting ext_proc before the router', () => {
    const filters = find(chart, 'EnvoyFilter');
    assert.equal(filters.length, 3);
    for (const filter of filters) {
      assert.deepEqual(envoyPatchErrors(filter), []);
      const insert = asObject(dig(filter, 'spec.configPatches.0'), 'patch');
      assert.equal(insert['applyTo'], 'HTTP_FILTER');
      assert.equal(dig(insert, 'match.context'), 'SIDECAR_INBOUND');
      assert.equal(dig(insert, 'match.listener.filterChain.filter.subFilter.name'), 'envoy.filters.http.router');
      assert.equal(dig(insert, 'patch.operation'), 'INSERT_BEFORE');
      assert.equal(dig(insert, 'patch.value.name'), 'envoy.filters.http.ext_proc');
    }
  });

  it('every workload\'s sidecar normalises paths and refuses escaped slashes (issue 17, finding 6)', () => {
    for (const filter of find(chart, 'EnvoyFilter')) {
      const patches = asArray(dig(filter, 'spec.configPatches'), 'configPatches').map((p) => asObject(p, 'patch'));
      const hcmPatch = patches.find((p) => p['applyTo'] === 'NETWORK_FILTER');
      assert.ok(hcmPatch, 'an HttpConnectionManager patch');
      assert.equal(dig(hcmPatch, 'match.context'), 'SIDECAR_INBOUND');
      assert.equal(dig(hcmPatch, 'match.listener.filterChain.filter.name'), 'envoy.filters.network.http_connection_manager');
      assert.equal(dig(hcmPatch, 'patch.operation'), 'MERGE');
      const config = asObject(dig(hcmPatch, 'patch.value.typed_config'), 'typed_config');
      assert.equal(config['normalize_path'], true);
      assert.equal(config['merge_slashes'], true);
      assert.equal(config['path_with_escaped_slashes_action'], 'REJECT_REQUEST');
    }
  });

  it('a misspelt field in an EnvoyFilter patch fails the proto check', () => {
    const filter = structuredClone(find(chart, 'EnvoyFilter')[0]);
    const config = asObject(dig(filter, 'spec.configPatches.0.patch.value.typed_config'), 'typed_config');
    config['procesing_mode'] = config['processing_mode'];
    delete config['processing_mode'];
    assert.deepEqual(envoyPatchErrors(filter), [
      'configPatches[0] $.typed_config.procesing_mode: unknown field "procesing_mode" of envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
    ]);
  });

  it('ext_proc in the EnvoyFilter matches the server: modes, metadata, mutation rules, cluster and port', () => {
    const service = only(chart, 'Service');
    const grpcPort = asArray(dig(service, 'spec.ports'), 'ports').map((p) => asObject(p, 'p')).find((p) => p['name'] === 'grpc')?.['port'];
    for (const filter of find(chart, 'EnvoyFilter')) {
      const config = asObject(dig(filter, 'spec.configPatches.0.patch.value.typed_config'), 'typed_config');
      assert.equal(config['failure_mode_allow'], false);
      for (const [field, allowed] of Object.entries(SERVER.processingModes)) {
        assert.ok(allowed.includes(String(dig(config, `processing_mode.${field}`))), field);
      }
      assert.deepEqual(dig(config, 'metadata_options.forwarding_namespaces.untyped'), [SERVER.authzMetadataNamespace]);
      assert.equal(dig(config, 'mutation_rules.allow_envoy'), true);
      assert.equal(dig(config, 'grpc_service.envoy_grpc.cluster_name'), `outbound|${String(grpcPort)}||${FQDN}`);
    }
  });

  it('each workload names a domain of the chart policy in ext_authz context_extensions', () => {
    const policy = asObject(parseYaml(String(dig(only(chart, 'ConfigMap'), ['data', 'security_mesh.yaml'])), 'policy'), 'policy');
    const domains = asArray(dig(policy, 'security_mesh.domains'), 'domains').map((d) => String(asObject(d, 'd')['name']));
    const named = find(chart, 'EnvoyFilter').map((f) => dig(f, [
      'spec', 'configPatches', '1', 'patch', 'value', 'typed_per_filter_config', 'envoy.filters.http.ext_authz', 'check_settings', 'context_extensions', 'domain',
    ]));
    assert.deepEqual(named, ['coordination', 'agent_memory', 'pii_inference']);
    for (const name of named) assert.ok(domains.includes(String(name)), `${String(name)} in policy`);
  });

  it('AuthorizationPolicy is CUSTOM with the provider the extension-provider snippet defines', () => {
    const policies = find(chart, 'AuthorizationPolicy');
    assert.equal(policies.length, 3);
    for (const p of policies) {
      assert.equal(dig(p, 'spec.action'), 'CUSTOM');
      assert.equal(dig(p, 'spec.provider.name'), 'mesh-pep');
      assert.equal(dig(p, 'metadata.namespace'), 'agents');
    }
    const overlay = only(renderChart(CHART, RELEASE, { istio: { istioOperatorOverlay: true } }), 'IstioOperator');
    const providers = asArray(dig(overlay, 'spec.meshConfig.extensionProviders'), 'providers');
    assert.equal(providers.length, 1);
    const provider = asObject(providers[0], 'provider');
    assert.equal(provider['name'], 'mesh-pep');
    const grpc = asObject(provider['envoyExtAuthzGrpc'], 'envoyExtAuthzGrpc');
    for (const key of Object.keys(grpc)) assert.ok(ISTIO_GRPC_PROVIDER_FIELDS.includes(key), `${key} is a field of EnvoyExternalAuthorizationGrpcProvider`);
    assert.deepEqual(grpc, { service: FQDN, port: SERVER.grpcPort, timeout: '0.5s', failOpen: false, statusOnError: '503' });
    // NOTES.txt prints the same helper, so what operators paste is what the overlay carries.
    assert.ok(chart.notes.includes(`- name: mesh-pep\n  envoyExtAuthzGrpc:\n    service: ${FQDN}\n    port: ${SERVER.grpcPort}`));
  });

  it('PeerAuthentication enforces STRICT mTLS in the agents namespace', () => {
    const pa = only(chart, 'PeerAuthentication');
    assert.equal(dig(pa, 'metadata.namespace'), 'agents');
    assert.equal(dig(pa, 'spec.mtls.mode'), 'STRICT');
  });
});
