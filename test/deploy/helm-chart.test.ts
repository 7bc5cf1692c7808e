import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { isCelError, run as celRun } from '@bufbuild/cel';
import { Ajv } from 'ajv';
import { parsePolicy } from '../../src/config/load.js';
import { selectDomain } from '../../src/policy/select-domain.js';
import { loadEnvoySchema, type EnvoySchema } from './support/envoy-schema.js';
import { chartNotes, chartValues, lintChart, renderChart, renderRefusal, type RenderedChart } from './support/helm-chart.js';
import { validateObject } from './support/k8s-schema.js';
import { asArray, asObject, dig, parseYaml, readRepoFile, repoPath, type Json } from './support/repo.js';
import { SERVER } from './support/server-contract.js';
import { CHART_COMBINATIONS, combination } from './support/chart-combinations.js';

const CHART = repoPath('helm', 'mesh-pep');
const RELEASE = { name: 'mesh-pep', namespace: 'mesh-pep' };
const FQDN = 'mesh-pep.mesh-pep.svc.cluster.local';
const CLUSTER = `outbound|${SERVER.grpcPort}||${FQDN}`;

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
    const partial = String(dig(patch, 'patch.operation')) === 'MERGE';
    for (const e of envoy.check(message, dig(patch, 'patch.value'), { partial })) errors.push(`configPatches[${i}] ${e}`);
  });
  return errors;
}

function container(rendered: RenderedChart): Json {
  return asObject(dig(only(rendered, 'Deployment'), 'spec.template.spec.containers.0'), 'container');
}

function podSpec(rendered: RenderedChart): Json {
  return asObject(dig(only(rendered, 'Deployment'), 'spec.template.spec'), 'pod');
}

function volumes(rendered: RenderedChart): Json[] {
  return asArray(podSpec(rendered)['volumes'], 'volumes').map((v) => asObject(v, 'volume'));
}

function objects(list: unknown, what: string): Json[] {
  return asArray(list, what).map((x) => asObject(x, what));
}

/** Every gRPC target (ext_authz and ext_proc) in an EnvoyFilter, wherever the filter config sits. */
function grpcTargets(filter: Json): Json[] {
  const out: Json[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        if (k === 'envoy_grpc') out.push(asObject(child, 'envoy_grpc'));
        else walk(child);
      }
    }
  };
  walk(filter);
  return out;
}

function pepPolicy(rendered: RenderedChart): Json {
  const all = find(rendered, 'AuthorizationPolicy').filter((p) => dig(p, 'metadata.namespace') === RELEASE.namespace);
  assert.equal(all.length, 1, 'one AuthorizationPolicy for the PEP itself');
  return all[0];
}

describe('helm/mesh-pep with the real helm: every documented values combination', () => {
  const schema = JSON.parse(readRepoFile('helm', 'mesh-pep', 'values.schema.json')) as object;
  const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);

  for (const [label, overrides] of Object.entries(CHART_COMBINATIONS)) {
    it(`${label}: values.schema.json, helm lint --strict, helm template, strict object and Envoy proto checks`, () => {
      assert.ok(validate(chartValues(CHART, overrides)), `ajv: ${JSON.stringify(validate.errors)}`);
      const lint = lintChart(CHART, overrides);
      assert.equal(lint.status, 0, `helm lint --strict: ${lint.stdout}${lint.stderr}`);
      assert.match(lint.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      const rendered = renderChart(CHART, RELEASE, overrides);
      assert.ok(rendered.objects.length >= 2);
      assert.deepEqual(validateAll(rendered), []);
      for (const filter of find(rendered, 'EnvoyFilter')) assert.deepEqual(envoyPatchErrors(filter), [], String(dig(filter, 'metadata.name')));
    });
  }

  it('helm lint --strict fails on a misspelt key (so the passes above mean something)', () => {
    const lint = lintChart(CHART, { replicaCont: 3 });
    assert.notEqual(lint.status, 0);
    assert.match(lint.stdout + lint.stderr, /replicaCont/);
  });

  it('the schema rejects typos, unimplemented body modes, bad durations and worker counts', () => {
    assert.equal(validate(chartValues(CHART, { replicaCont: 3 })), false);
    assert.match(JSON.stringify(validate.errors), /additionalProperties.*replicaCont/);
    assert.equal(validate(chartValues(CHART, { istio: { extProc: { requestBodyMode: 'BUFFERED_PARTIAL' } } })), false);
    assert.equal(validate(chartValues(CHART, { istio: { authzTimeout: '500ms' } })), false);
    for (const workers of [0, 'all', 1.5]) assert.equal(validate(chartValues(CHART, { workers })), false, `workers: ${workers}`);
  });

  it('item 10: only ClusterIP for the gRPC port; helm itself refuses LoadBalancer and NodePort', () => {
    for (const type of ['LoadBalancer', 'NodePort']) {
      assert.equal(validate(chartValues(CHART, { service: { type } })), false, type);
      assert.match(renderRefusal(CHART, RELEASE, { service: { type } }), /service\.type|ClusterIP/);
    }
  });

  it('providerName is a DNS-1123 label of at most 63 characters; resources and securityContext are typed', () => {
    for (const providerName of ['Mesh_PEP', 'mesh-pep-', 'a'.repeat(64), '']) {
      assert.equal(validate(chartValues(CHART, { istio: { providerName } })), false, providerName);
    }
    assert.ok(validate(chartValues(CHART, { istio: { providerName: 'a'.repeat(63) } })));
    assert.equal(validate(chartValues(CHART, { resources: { requests: { cpu: 'lots' } } })), false);
    assert.equal(validate(chartValues(CHART, { resources: { limts: { cpu: '1' } } })), false);
    assert.equal(validate(chartValues(CHART, { securityContext: { readOnlyRootFilesytem: true } })), false);
    assert.equal(validate(chartValues(CHART, { securityContext: { privileged: true } })), false);
    assert.equal(validate(chartValues(CHART, { podSecurityContext: { fsGrup: 1000 } })), false);
  });

  it('workers reach the server as MESH_PEP_WORKERS: auto by default, a number when set', () => {
    const env = (r: RenderedChart) => objects(container(r)['env'], 'env').find((e) => e['name'] === 'MESH_PEP_WORKERS')?.['value'];
    assert.equal(env(chart), 'auto');
    assert.equal(env(renderChart(CHART, RELEASE, { workers: 3 })), '3');
  });
});

describe('helm/mesh-pep rendered objects', () => {
  it('default render: the kinds an operator gets, each valid with no unknown field', () => {
    const kinds = [...new Set(chart.objects.map((o) => String(o['kind'])))].sort();
    assert.deepEqual(kinds, [
      'AuthorizationPolicy', 'ConfigMap', 'Deployment', 'DestinationRule', 'EnvoyFilter', 'HorizontalPodAutoscaler', 'NetworkPolicy',
      'PeerAuthentication', 'PodDisruptionBudget', 'Service', 'ServiceAccount', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding',
    ]);
    assert.deepEqual(validateAll(chart), []);
  });

  it('every optional template off renders just the Deployment and the Service', () => {
    const off = renderChart(CHART, RELEASE, combination('minimal'));
    assert.deepEqual(off.objects.map((o) => o['kind']).sort(), ['Deployment', 'Service']);
    assert.equal(volumes(off)[0]?.['configMap'] && dig(volumes(off)[0], 'configMap.name'), 'operator-policy');
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

  it('recommended labels on every object, with app.kubernetes.io/component', () => {
    for (const o of chart.objects) {
      const labels = asObject(dig(o, 'metadata.labels'), 'labels');
      for (const key of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/part-of', 'helm.sh/chart']) {
        assert.ok(key in labels, `${String(o['kind'])} ${key}`);
      }
      assert.ok(['pep', 'mesh-wiring'].includes(String(labels['app.kubernetes.io/component'])), `${String(o['kind'])} component`);
    }
    assert.equal(dig(only(chart, 'Deployment'), ['spec', 'template', 'metadata', 'labels', 'app.kubernetes.io/component']), 'pep');
  });
});

describe('helm/mesh-pep Deployment and Service', () => {
  it('probes hit /healthz and /readyz on the admin port; the gRPC port matches the server; drainDelay is passed', () => {
    const c = container(chart);
    const ports = Object.fromEntries(objects(c['ports'], 'ports').map((p) => [String(p['name']), p['containerPort']]));
    assert.deepEqual(ports, { grpc: SERVER.grpcPort, admin: SERVER.adminPort });
    for (const probe of ['startupProbe', 'livenessProbe']) assert.deepEqual(dig(c, `${probe}.httpGet`), { path: SERVER.adminPaths.liveness, port: 'admin' });
    assert.deepEqual(dig(c, 'readinessProbe.httpGet'), { path: SERVER.adminPaths.readiness, port: 'admin' });
    assert.deepEqual(c['args'], [
      'serve', '--config', '/etc/mesh-pep/policy/security_mesh.yaml', '--grpc-address', `0.0.0.0:${SERVER.grpcPort}`,
      '--admin-address', `0.0.0.0:${SERVER.adminPort}`, '--drain-delay', '5s',
    ]);
    assert.equal(c['image'], 'ghcr.io/mesh-pep/mesh-pep:0.1.0', 'tag defaults to appVersion');
    assert.ok(Number(podSpec(chart)['terminationGracePeriodSeconds']) > 5, 'drain delay fits in the grace period');
  });

  it('runs non-root, read-only, with replicas spread over nodes and zones by default', () => {
    const c = container(chart);
    assert.equal(dig(c, 'securityContext.readOnlyRootFilesystem'), true);
    assert.equal(dig(c, 'securityContext.allowPrivilegeEscalation'), false);
    assert.deepEqual(dig(c, 'securityContext.capabilities.drop'), ['ALL']);
    const pod = podSpec(chart);
    assert.equal(dig(pod, 'securityContext.runAsNonRoot'), true);
    const selector = dig(only(chart, 'Deployment'), 'spec.selector.matchLabels');
    assert.deepEqual(dig(pod, 'affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.podAffinityTerm.labelSelector.matchLabels'), selector);
    assert.deepEqual(pod['topologySpreadConstraints'], [
      { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selector } },
    ]);
  });

  it('holdApplicationUntilProxyStarts: the sidecar is ready before mesh-pep starts', () => {
    const annotations = asObject(dig(only(chart, 'Deployment'), 'spec.template.metadata.annotations'), 'annotations');
    assert.deepEqual(JSON.parse(String(annotations['proxy.istio.io/config'])), { holdApplicationUntilProxyStarts: true });
  });

  it('HPA scales on the mesh-pep container alone, against a cpu request sized for workers: auto', () => {
    const metric = asObject(dig(only(chart, 'HorizontalPodAutoscaler'), 'spec.metrics.0'), 'metric');
    assert.equal(metric['type'], 'ContainerResource');
    assert.deepEqual(dig(metric, 'containerResource.container'), 'mesh-pep');
    assert.equal(dig(metric, 'containerResource.name'), 'cpu');
    // workers: auto = the cpu limit rounded up; at least a quarter core requested per worker.
    const c = container(chart);
    const cores = (q: unknown) => (String(q).endsWith('m') ? Number(String(q).slice(0, -1)) / 1000 : Number(q));
    const workers = Math.ceil(cores(dig(c, 'resources.limits.cpu')));
    assert.ok(cores(dig(c, 'resources.requests.cpu')) >= 0.25 * workers);
  });

  it('Service: ClusterIP, port grpc with appProtocol grpc, selecting the Deployment pods', () => {
    const service = only(chart, 'Service');
    assert.equal(dig(service, 'spec.type'), 'ClusterIP');
    const grpc = objects(dig(service, 'spec.ports'), 'ports').find((p) => p['name'] === 'grpc');
    assert.ok(grpc);
    assert.equal(grpc['appProtocol'], 'grpc');
    assert.equal(grpc['port'], SERVER.grpcPort);
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

  it('every file the policy names lies under a volume the container mounts; Secrets are mounted 0440', () => {
    const policy = asObject(parseYaml(String(dig(only(chart, 'ConfigMap'), ['data', 'security_mesh.yaml'])), 'policy'), 'policy');
    const mounts = objects(container(chart)['volumeMounts'], 'mounts').map((m) => String(m['mountPath']));
    for (const file of ['identity.jwks_file', 'keys.dir', 'keys.pseudonym_key_file', 'audit.file'].map((k) => String(dig(policy, `security_mesh.${k}`)))) {
      assert.ok(mounts.some((m) => file === m || file.startsWith(`${m}/`)), `${file} is under one of ${mounts.join(', ')}`);
    }
    const secrets = volumes(chart).filter((v) => v['secret']);
    assert.deepEqual(secrets.map((v) => v['name']).sort(), ['domain-keys', 'issuer-jwks', 'pseudonym-key']);
    for (const v of secrets) assert.equal(dig(v, 'secret.defaultMode'), 0o440, String(v['name']));
  });

  it('mesh-pep accepts the chart policy (mesh-pep validate)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-pep-chart-'));
    try {
      const file = path.join(dir, 'security_mesh.yaml');
      fs.writeFileSync(file, String(dig(only(chart, 'ConfigMap'), ['data', 'security_mesh.yaml'])));
      const run = spawnSync(process.execPath, [repoPath('dist', 'src', 'cli', 'main.js'), 'validate', '--config', file], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 0, `mesh-pep validate: ${run.stdout}${run.stderr}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('TLS: the Secret is mounted 0440 and passed as --tls-cert/--tls-key/--tls-client-ca; refused together with Istio', () => {
    const tls = renderChart(CHART, RELEASE, combination('tls'));
    const args = asArray(container(tls)['args'], 'args').map(String);
    for (const [flag, file] of [['--tls-cert', 'tls.crt'], ['--tls-key', 'tls.key'], ['--tls-client-ca', 'ca.crt']]) {
      assert.equal(args[args.indexOf(flag) + 1], `/var/run/mesh-pep/tls/${file}`);
    }
    assert.deepEqual(volumes(tls).find((v) => v['name'] === 'tls')?.['secret'], { secretName: 'mesh-pep-tls', defaultMode: 0o440 });
    assert.match(renderRefusal(CHART, RELEASE, { tls: { secretName: 'mesh-pep-tls' } }), /tls\.secretName with Istio/);
  });

  it('FHE keys on a PVC: mounted read-only in place of the Secret', () => {
    const pvc = renderChart(CHART, RELEASE, combination('fhe-keys-pvc'));
    assert.deepEqual(volumes(pvc).find((v) => v['name'] === 'domain-keys')?.['persistentVolumeClaim'], { claimName: 'mesh-pep-keys', readOnly: true });
  });

  it('audit on a shared claim: each pod writes its own folder (subPathExpr)', () => {
    const audit = renderChart(CHART, RELEASE, { audit: { existingClaim: 'mesh-pep-audit' } });
    const mount = objects(container(audit)['volumeMounts'], 'mounts').find((m) => m['name'] === 'audit');
    assert.equal(mount?.['subPathExpr'], '$(POD_NAME)');
    assert.deepEqual(volumes(audit).find((v) => v['name'] === 'audit')?.['persistentVolumeClaim'], { claimName: 'mesh-pep-audit' });
  });

  it('NOTES.txt names every Secret the pods need and how to create it', () => {
    const notes = chartNotes(CHART, RELEASE);
    for (const secret of ['mesh-pep-issuer-jwks', 'mesh-pep-pseudonym-key', 'mesh-pep-domain-keys']) {
      assert.match(notes, new RegExp(`kubectl -n mesh-pep create secret generic ${secret} `));
    }
  });
});

describe('item 9: key rotation ships as a CronJob that works with the chart volumes', () => {
  it('refused without a keys claim: a Secret volume cannot be written', () => {
    assert.match(renderRefusal(CHART, RELEASE, { keys: { rotation: { enabled: true } } }), /keys\.rotation needs keys\.domainKeys\.existingClaim/);
  });

  it('rotates and prunes on the claim the replicas read, with the same policy file', () => {
    const r = renderChart(CHART, RELEASE, combination('key-rotation'));
    const job = only(r, 'CronJob');
    assert.equal(dig(job, 'spec.schedule'), '*/10 * * * *');
    assert.equal(dig(job, 'spec.concurrencyPolicy'), 'Forbid');
    const pod = asObject(dig(job, 'spec.jobTemplate.spec.template.spec'), 'job pod');
    const c = asObject(dig(pod, 'containers.0'), 'rotate');
    assert.deepEqual(c['args'], ['keys', 'rotate', '--config', '/etc/mesh-pep/policy/security_mesh.yaml', '--prune-older-than', '720h']);
    const mountOf = (cont: Json, name: string) => objects(cont['volumeMounts'], 'mounts').find((m) => m['name'] === name);
    const policy = asObject(parseYaml(String(dig(only(r, 'ConfigMap'), ['data', 'security_mesh.yaml'])), 'policy'), 'policy');
    assert.equal(mountOf(c, 'domain-keys')?.['mountPath'], dig(policy, 'security_mesh.keys.dir'), 'the CronJob writes where the policy reads');
    assert.notEqual(mountOf(c, 'domain-keys')?.['readOnly'], true);
    assert.equal(mountOf(container(r), 'domain-keys')?.['mountPath'], dig(policy, 'security_mesh.keys.dir'));
    const claim = (vols: Json[]) => vols.find((v) => v['name'] === 'domain-keys')?.['persistentVolumeClaim'];
    assert.deepEqual(claim(objects(pod['volumes'], 'volumes')), { claimName: 'mesh-pep-keys' });
    assert.deepEqual(claim(volumes(r)), { claimName: 'mesh-pep-keys', readOnly: true });
    assert.equal(dig(pod, 'volumes.0.configMap.name'), dig(only(r, 'ConfigMap'), 'metadata.name'));
  });
});

describe('helm/mesh-pep Istio resources', () => {
  it('EnvoyFilter patches are valid Envoy config inserting ext_proc before the router, in the root namespace', () => {
    const filters = find(chart, 'EnvoyFilter');
    assert.equal(filters.length, 3);
    for (const filter of filters) {
      assert.deepEqual(envoyPatchErrors(filter), []);
      assert.equal(dig(filter, 'metadata.namespace'), 'istio-system');
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

  it('item 1: every gRPC target names the Istio cluster AND a valid :authority (the service FQDN)', () => {
    const everything = renderChart(CHART, RELEASE, combination('outbound'));
    const filters = find(everything, 'EnvoyFilter');
    assert.equal(filters.length, 4);
    // RFC 3986 reg-name (unreserved / sub-delims / pct-encoded) with an optional port: no "|".
    const authority = /^[A-Za-z0-9\-._~!$&'()*+,;=%]+(:\d+)?$/;
    assert.equal(authority.test(CLUSTER), false, 'the cluster name itself is not a valid authority');
    let targets = 0;
    for (const filter of filters) {
      for (const target of grpcTargets(filter)) {
        targets++;
        assert.deepEqual(target, { cluster_name: CLUSTER, authority: FQDN });
        assert.ok(authority.test(String(target['authority'])));
      }
    }
    assert.equal(targets, 3 + 2, 'ext_proc in three inbound filters; ext_authz and ext_proc in the outbound one');
  });

  it('ext_proc settings match the server: modes, metadata, mutation rules, fail closed', () => {
    for (const filter of find(chart, 'EnvoyFilter')) {
      const config = asObject(dig(filter, 'spec.configPatches.0.patch.value.typed_config'), 'typed_config');
      assert.equal(config['failure_mode_allow'], false);
      for (const [field, allowed] of Object.entries(SERVER.processingModes)) assert.ok(allowed.includes(String(dig(config, `processing_mode.${field}`))), field);
      assert.deepEqual(dig(config, 'metadata_options.forwarding_namespaces.untyped'), [SERVER.authzMetadataNamespace]);
      assert.equal(dig(config, 'mutation_rules.allow_envoy'), true);
    }
  });

  it('item 2: Check and ext_proc cover the same requests; exempt paths skip both', () => {
    for (const p of find(chart, 'AuthorizationPolicy').filter((x) => dig(x, 'spec.action') === 'CUSTOM')) {
      assert.deepEqual(dig(p, 'spec.rules'), [{}], 'no exemption: Check on every request, as ext_proc');
    }
    const exempt = renderChart(CHART, RELEASE, combination('outbound'));
    const policy = find(exempt, 'AuthorizationPolicy').find((p) => dig(p, 'metadata.name') === 'mesh-pep-agents-retriever');
    assert.ok(policy);
    assert.deepEqual(dig(policy, 'spec.rules'), [{ to: [{ operation: { notPaths: ['/healthz', '/public/*'] } }] }]);
    const filter = find(exempt, 'EnvoyFilter').find((f) => dig(f, 'metadata.name') === 'mesh-pep-agents-retriever');
    assert.ok(filter);
    const wrapped = asObject(dig(filter, 'spec.configPatches.0.patch.value.typed_config'), 'typed_config');
    assert.equal(wrapped['@type'], 'type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher');
    assert.equal(dig(wrapped, 'extension_config.typed_config.@type'), 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor');
    const matchers = objects(dig(wrapped, 'xds_matcher.matcher_list.matchers'), 'matchers');
    assert.deepEqual(matchers.map((m) => dig(m, 'predicate.single_predicate.value_match')), [
      { safe_regex: { google_re2: {}, regex: '^/healthz([?].*)?$' } },
      { prefix: '/public/' },
    ]);
    for (const m of matchers) assert.equal(dig(m, 'on_match.action.typed_config.@type'), 'type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter');
  });

  it('item 5: every workload names domains of the chart policy, and each request finds its domain', () => {
    const text = String(dig(only(chart, 'ConfigMap'), ['data', 'security_mesh.yaml']));
    const { policy, problems } = parsePolicy(text, path.join(os.tmpdir(), 'security_mesh.yaml'));
    assert.ok(policy, JSON.stringify(problems));
    const ext = (name: string) => asObject(dig(find(chart, 'EnvoyFilter', `mesh-pep-agents-${name}`)[0], [
      'spec', 'configPatches', '1', 'patch', 'value', 'typed_per_filter_config', 'envoy.filters.http.ext_authz', 'check_settings', 'context_extensions',
    ]), 'context_extensions') as Record<string, string>;
    const pick = (name: string, host: string, reqPath: string) => selectDomain(policy, host, reqPath, ext(name)['domain'], ext(name)['domains']).domain?.name;
    assert.equal(pick('orchestrator', 'orchestrator.agents', '/tasks'), 'coordination');
    assert.equal(pick('retriever', 'retriever.agents', '/v1/memory/1'), 'agent_memory');
    // The analyst serves two domains, told apart by path...
    assert.equal(pick('analyst', 'analyst.agents:8080', '/inference/score'), 'pii_inference');
    assert.equal(pick('analyst', 'analyst.agents:8080', '/models/risk?x=1'), 'financial_models');
    // ...and only its own: a path of no analyst domain is no_policy, never another workload's domain.
    assert.equal(pick('analyst', 'retriever.agents', '/v1/memory/1'), undefined);
    assert.deepEqual(ext('analyst'), { domains: 'pii_inference,financial_models' });
  });

  it('item 5: the chart refuses a domain the policy lacks, and a multi-domain workload whose domains have no path match', () => {
    assert.match(
      renderRefusal(CHART, RELEASE, { istio: { agents: { workloads: [{ name: 'x', selector: { app: 'x' }, domains: ['nope'], exemptPaths: [] }] } } }),
      /names domain nope, which policy\.securityMesh\.domains does not define/,
    );
    assert.match(
      renderRefusal(CHART, RELEASE, { istio: { agents: { workloads: [{ name: 'x', selector: { app: 'x' }, domains: ['agent_memory', 'coordination'], exemptPaths: [] }] } } }),
      /domain agent_memory needs match\.path_prefixes/,
    );
  });

  it('item 4: the agents namespace is set once; the NetworkPolicy and the PEP policy follow it', () => {
    const grpcFrom = (r: RenderedChart) => objects(dig(only(r, 'NetworkPolicy'), 'spec.ingress.0.from'), 'from').map((p) => dig(p, ['namespaceSelector', 'matchLabels', 'kubernetes.io/metadata.name']));
    const pepFrom = (r: RenderedChart) => dig(pepPolicy(r), 'spec.rules.0.from.0.source.namespaces');
    assert.deepEqual(grpcFrom(chart), ['agents']);
    assert.deepEqual(pepFrom(chart), ['agents']);
    const moved = renderChart(CHART, RELEASE, { istio: { agents: { namespace: 'team-a' } } });
    assert.deepEqual(grpcFrom(moved), ['team-a']);
    assert.deepEqual(pepFrom(moved), ['team-a']);
    for (const p of find(moved, 'PeerAuthentication').filter((x) => dig(x, 'metadata.namespace') !== RELEASE.namespace)) assert.equal(dig(p, 'metadata.namespace'), 'team-a');
    const more = renderChart(CHART, RELEASE, { istio: { gatewayNamespaces: ['ingress'], operatorNamespace: 'ops', outbound: { enabled: true, callers: [{ name: 'c', namespace: 'callers', serviceAccount: 'c', selector: { app: 'c' } }] } } });
    assert.deepEqual(grpcFrom(more), ['agents', 'ingress', 'callers', 'ops']);
    assert.deepEqual(pepFrom(more), ['agents', 'ingress', 'callers']);
  });

  it('item 3: merged metrics (default) are scraped from 15020/15090; direct metrics from the admin port', () => {
    const metricsPorts = (r: RenderedChart) => objects(dig(only(r, 'NetworkPolicy'), 'spec.ingress.1.ports'), 'ports').map((p) => p['port']);
    assert.deepEqual(metricsPorts(chart), [15020, 15090]);
    const annotations = (r: RenderedChart) => asObject(dig(only(r, 'Deployment'), 'spec.template.metadata.annotations'), 'annotations');
    assert.equal(annotations(chart)['prometheus.istio.io/merge-metrics'], undefined);
    assert.equal(asObject(dig(find(chart, 'PeerAuthentication', 'mesh-pep')[0], 'spec'), 'spec')['portLevelMtls'], undefined);

    const direct = renderChart(CHART, RELEASE, combination('metrics-direct'));
    assert.deepEqual(metricsPorts(direct), ['admin']);
    assert.equal(annotations(direct)['prometheus.istio.io/merge-metrics'], 'false');
    const pa = find(direct, 'PeerAuthentication', 'mesh-pep')[0];
    assert.deepEqual(dig(pa, 'spec.portLevelMtls'), { [String(SERVER.adminPort)]: { mode: 'PERMISSIVE' } });
    const rules = objects(dig(pepPolicy(direct), 'spec.rules'), 'rules');
    assert.deepEqual(rules.at(-1), { to: [{ operation: { ports: [String(SERVER.adminPort)], methods: ['GET'], paths: ['/metrics'] } }] });
    const monitor = only(direct, 'PodMonitor');
    assert.deepEqual(dig(monitor, 'spec.podMetricsEndpoints.0'), { port: 'admin', path: '/metrics', interval: '30s' });
    assert.deepEqual(dig(monitor, 'spec.selector.matchLabels'), dig(only(direct, 'Deployment'), 'spec.selector.matchLabels'));
    assert.match(renderRefusal(CHART, RELEASE, { metrics: { podMonitor: { enabled: true } } }), /metrics\.mode=direct/);
  });

  it('item 6: the PEP port is STRICT mTLS and admits only Check, Process and health from the enforcing namespaces', () => {
    const pa = find(chart, 'PeerAuthentication', 'mesh-pep')[0];
    assert.equal(dig(pa, 'metadata.namespace'), RELEASE.namespace);
    assert.equal(dig(pa, 'spec.mtls.mode'), 'STRICT');
    const selector = dig(only(chart, 'Deployment'), 'spec.selector.matchLabels');
    assert.deepEqual(dig(pa, 'spec.selector.matchLabels'), selector);
    const policy = pepPolicy(chart);
    assert.equal(dig(policy, 'spec.action'), 'ALLOW');
    assert.deepEqual(dig(policy, 'spec.selector.matchLabels'), selector);
    assert.deepEqual(dig(policy, 'spec.rules'), [{
      from: [{ source: { namespaces: ['agents'] } }],
      to: [{ operation: {
        ports: [String(SERVER.grpcPort)],
        methods: ['POST'],
        paths: ['/envoy.service.auth.v3.Authorization/Check', '/envoy.service.ext_proc.v3.ExternalProcessor/Process', '/grpc.health.v1.Health/Check', '/grpc.health.v1.Health/Watch'],
      } }],
    }], 'no admin API, no reflection by default');
    const ops = pepPolicy(renderChart(CHART, RELEASE, { istio: { operatorNamespace: 'ops' } }));
    assert.deepEqual(dig(ops, 'spec.rules.1.from'), [{ source: { namespaces: ['ops'] } }]);
    assert.deepEqual(dig(ops, 'spec.rules.1.to.0.operation.paths'), [
      '/meshpep.admin.v1.Admin/*', '/grpc.reflection.v1.ServerReflection/*', '/grpc.reflection.v1alpha.ServerReflection/*', '/grpc.health.v1.Health/*',
    ]);
  });

  it('item 7: enforcement resources live in the root namespace; callers never fall back to plaintext', () => {
    for (const kind of ['EnvoyFilter', 'DestinationRule']) for (const o of find(chart, kind)) assert.equal(dig(o, 'metadata.namespace'), 'istio-system', kind);
    for (const p of find(chart, 'AuthorizationPolicy').filter((x) => dig(x, 'spec.action') === 'CUSTOM')) assert.equal(dig(p, 'metadata.namespace'), 'istio-system');
    const dr = only(chart, 'DestinationRule');
    assert.equal(dig(dr, 'spec.host'), '*.agents.svc.cluster.local');
    assert.deepEqual(dig(dr, 'spec.trafficPolicy'), { tls: { mode: 'ISTIO_MUTUAL' } });
  });

  it('item 7: the admission policy refuses, in the agents namespace, pods without the sidecar or outside every selector', () => {
    const vap = only(chart, 'ValidatingAdmissionPolicy');
    const binding = only(chart, 'ValidatingAdmissionPolicyBinding');
    assert.equal(dig(binding, 'spec.policyName'), dig(vap, 'metadata.name'));
    assert.deepEqual(dig(binding, 'spec.validationActions'), ['Deny']);
    assert.deepEqual(dig(binding, 'spec.matchResources.namespaceSelector.matchLabels'), { 'kubernetes.io/metadata.name': 'agents' });
    assert.equal(dig(vap, 'spec.failurePolicy'), 'Fail');
    const expressions = objects(dig(vap, 'spec.validations'), 'validations').map((v) => String(v['expression']));
    const admits = (pod: Json) => expressions.every((e) => {
      const r = celRun(e, { object: pod as never });
      assert.ok(!isCelError(r), `CEL error in ${e}: ${String(r)}`);
      return r === true;
    });
    const proxy = { name: 'istio-proxy', image: 'istio/proxyv2' };
    const app = { name: 'app', image: 'retriever' };
    assert.equal(admits({ metadata: { labels: { app: 'retriever' } }, spec: { containers: [app, proxy] } }), true, 'injected sidecar');
    assert.equal(admits({ metadata: { labels: { app: 'analyst', v: '2' } }, spec: { initContainers: [{ ...proxy, restartPolicy: 'Always' }], containers: [app] } }), true, 'native sidecar');
    assert.equal(admits({ metadata: { labels: { app: 'retriever' } }, spec: { containers: [app] } }), false, 'injection disabled');
    assert.equal(admits({ metadata: { labels: { app: 'retriever-unprotected' } }, spec: { containers: [app, proxy] } }), false, 'relabelled out of the selectors');
    assert.equal(admits({ metadata: {}, spec: { containers: [app, proxy] } }), false, 'no labels');
  });

  it('item 7: the outbound mode runs Check and ext_proc in the caller, only toward protected destinations', () => {
    const r = renderChart(CHART, RELEASE, combination('outbound'));
    const out = find(r, 'EnvoyFilter').find((f) => String(dig(f, 'metadata.name')).startsWith('mesh-pep-out-'));
    assert.ok(out);
    assert.equal(dig(out, 'metadata.namespace'), 'istio-system');
    assert.deepEqual(dig(out, 'spec.workloadSelector.labels'), { app: 'orchestrator' });
    const patches = objects(dig(out, 'spec.configPatches'), 'patches');
    const target = (p: Json) => (p['applyTo'] === 'HTTP_FILTER' ? dig(p, 'patch.value.name') : dig(p, 'match.routeConfiguration.vhost.name'));
    assert.deepEqual(patches.map((p) => [p['applyTo'], dig(p, 'match.context'), target(p)]), [
      ['HTTP_FILTER', 'SIDECAR_OUTBOUND', 'envoy.filters.http.ext_authz'],
      ['HTTP_FILTER', 'SIDECAR_OUTBOUND', 'envoy.filters.http.ext_proc'],
      ['VIRTUAL_HOST', 'SIDECAR_OUTBOUND', 'retriever.agents.svc.cluster.local:8080'],
    ]);
    for (const p of patches.slice(0, 2)) assert.equal(dig(p, 'patch.value.disabled'), true, 'off unless a protected destination turns it on');
    const authz = asObject(dig(patches[0], 'patch.value.typed_config'), 'ext_authz');
    assert.equal(authz['failure_mode_allow'], false);
    assert.deepEqual(authz['status_on_error'], { code: 'ServiceUnavailable' });
    const perFilter = asObject(dig(patches[2], 'patch.value.typed_per_filter_config'), 'typed_per_filter_config');
    assert.deepEqual(dig(perFilter, ['envoy.filters.http.ext_authz', 'config', 'check_settings', 'context_extensions']), {
      domain: 'agent_memory',
      source_principal: 'spiffe://cluster.local/ns/agents/sa/orchestrator',
    });
    assert.equal(dig(perFilter, ['envoy.filters.http.ext_proc', '@type']), 'type.googleapis.com/envoy.config.route.v3.FilterConfig');
    assert.deepEqual(dig(pepPolicy(r), 'spec.rules.0.from.0.source.namespaces'), ['agents']);
  });

  it('item 8: an ambient namespace is refused unless Check-only mode is chosen; that mode renders no EnvoyFilter', () => {
    assert.match(renderRefusal(CHART, RELEASE, { istio: { agents: { dataplaneMode: 'ambient' } } }), /runs Istio ambient: waypoints ignore EnvoyFilter.*ambient-check-only/s);
    assert.match(renderRefusal(CHART, RELEASE, { istio: { mode: 'ambient-check-only' } }), /needs istio\.agents\.dataplaneMode=ambient/);
    const ambient = renderChart(CHART, RELEASE, combination('ambient-check-only'));
    assert.equal(find(ambient, 'EnvoyFilter').length, 0);
    assert.equal(find(ambient, 'ValidatingAdmissionPolicy').length, 0);
    const custom = find(ambient, 'AuthorizationPolicy').filter((p) => dig(p, 'spec.action') === 'CUSTOM');
    assert.equal(custom.length, 1);
    assert.equal(dig(custom[0], 'metadata.namespace'), 'agents');
    assert.deepEqual(dig(custom[0], 'spec.targetRefs'), [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }]);
    assert.equal(dig(custom[0], 'spec.provider.name'), 'mesh-pep');
    assert.deepEqual(dig(pepPolicy(ambient), 'spec.rules.0.from.0.source.namespaces'), ['agents'], 'the waypoint runs in the agents namespace');
    assert.match(chartNotes(CHART, RELEASE, combination('ambient-check-only')), /Payloads are NOT protected/);
  });

  it('PeerAuthentication and Telemetry are v1; trace sampling defaults below 100 %', () => {
    for (const p of find(chart, 'PeerAuthentication')) assert.equal(p['apiVersion'], 'security.istio.io/v1');
    const agents = find(chart, 'PeerAuthentication').find((p) => dig(p, 'metadata.namespace') === 'agents');
    assert.equal(dig(agents, 'spec.mtls.mode'), 'STRICT');
    const telemetry = only(renderChart(CHART, RELEASE, { istio: { telemetry: { enabled: true } } }), 'Telemetry');
    assert.equal(telemetry['apiVersion'], 'telemetry.istio.io/v1');
    const pct = Number(dig(telemetry, 'spec.tracing.0.randomSamplingPercentage'));
    assert.ok(pct > 0 && pct < 100, `sampling ${pct}`);
  });

  it('the extension provider: CUSTOM policies name it; NOTES prints it; files/ has the same for the defaults', () => {
    for (const p of find(chart, 'AuthorizationPolicy').filter((x) => dig(x, 'spec.action') === 'CUSTOM')) assert.equal(dig(p, 'spec.provider.name'), 'mesh-pep');
    const file = asObject(parseYaml(readRepoFile('helm', 'mesh-pep', 'files', 'istio-extension-provider.yaml'), 'istio-extension-provider.yaml'), 'file');
    const providers = objects(dig(file, 'meshConfig.extensionProviders'), 'providers');
    assert.equal(providers.length, 1);
    const grpc = asObject(providers[0]['envoyExtAuthzGrpc'], 'envoyExtAuthzGrpc');
    for (const key of Object.keys(grpc)) assert.ok(ISTIO_GRPC_PROVIDER_FIELDS.includes(key), `${key} is a field of EnvoyExternalAuthorizationGrpcProvider`);
    assert.deepEqual(providers[0], { name: 'mesh-pep', envoyExtAuthzGrpc: { service: FQDN, port: SERVER.grpcPort, timeout: '0.5s', failOpen: false, statusOnError: '503' } });
    const notes = chartNotes(CHART, RELEASE);
    const at = notes.indexOf('- name: mesh-pep');
    assert.ok(at >= 0);
    const printed = parseYaml(notes.slice(at).split('\n\n')[0], 'NOTES snippet');
    assert.deepEqual(printed, providers);
    assert.equal(fs.existsSync(repoPath('helm', 'mesh-pep', 'templates', 'istio', 'istiooperator-overlay.yaml')), false, 'the overlay is not a template');
  });
});
