import assert from 'node:assert/strict';
import fs from 'node:fs';
import { before, describe, it } from 'node:test';
import { loadEnvoySchema, type EnvoySchema } from './support/envoy-schema.js';
import { asArray, asObject, dig, readYaml, repoPath, type Json } from './support/repo.js';
import { SERVER } from './support/server-contract.js';

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

let schema: EnvoySchema;
let bootstrap: Json;

before(() => {
  schema = loadEnvoySchema();
  bootstrap = asObject(readYaml('envoy', 'envoy.yaml'), 'envoy/envoy.yaml');
});

function copy<T>(value: T): T {
  return structuredClone(value);
}

function hcm(config: Json): Json {
  return asObject(dig(config, 'static_resources.listeners.0.filter_chains.0.filters.0.typed_config'), 'HCM');
}

function httpFilters(config: Json): Json[] {
  return asArray(hcm(config)['http_filters'], 'http_filters').map((f, i) => asObject(f, `http_filters[${i}]`));
}

function filterConfig(config: Json, name: string): Json {
  const filter = httpFilters(config).find((f) => f['name'] === name);
  assert.ok(filter, `http filter ${name} present`);
  return asObject(filter['typed_config'], `${name}.typed_config`);
}

function routes(config: Json): Json[] {
  return asArray(dig(hcm(config), 'route_config.virtual_hosts.0.routes'), 'routes').map((r, i) => asObject(r, `route ${i}`));
}

function clusters(config: Json): Json[] {
  return asArray(dig(config, 'static_resources.clusters'), 'clusters').map((c, i) => asObject(c, `cluster ${i}`));
}

/**
 * Rewrites every field name to its lowerCamel JSON name. Keys with dots are map keys naming filters or
 * extensions (`envoy.filters.http.ext_authz`) and stay as they are; the other map keys here
 * (`context_extensions.domain`) have no underscore.
 */
function camelKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k.includes('.') ? k : k.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()), camelKeys(v)]),
  );
}

/**
 * Fields newer than the Envoy protos in @grpc/grpc-js-xds: named one by one, and checked by Envoy 1.40
 * itself (`envoy --mode validate` and the running suite in `npm run test:envoy`, e2e/validate.test.ts).
 */
const NEWER_THAN_BUNDLED_PROTOS = [/\.(status_on_error|statusOnError): unknown field "(status_on_error|statusOnError)" of envoy\.extensions\.filters\.http\.ext_proc\.v3\.ExternalProcessor$/];
const knownToProtos = (errors: string[]) => errors.filter((e) => !NEWER_THAN_BUNDLED_PROTOS.some((re) => re.test(e)));

describe('envoy/envoy.yaml against Envoy protos', () => {
  it('is a valid Bootstrap, every field and @type known', () => {
    assert.deepEqual(knownToProtos(schema.check(BOOTSTRAP, bootstrap)), []);
    for (const type of [
      'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
      'envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
      'envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
      'envoy.extensions.filters.http.router.v3.Router',
      'envoy.config.trace.v3.OpenTelemetryConfig',
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    ]) {
      assert.ok(schema.typesSeen.has(type), `${type} was resolved and checked`);
    }
  });

  it('accepts the lowerCamel JSON names as Envoy does', () => {
    const camel = camelKeys(bootstrap);
    assert.ok(JSON.stringify(camel).includes('"staticResources"') && JSON.stringify(camel).includes('"failureModeAllow"'));
    assert.deepEqual(knownToProtos(schema.check(BOOTSTRAP, camel)), []);
  });

  it('rejects a misspelt top-level field', () => {
    const bad = copy(bootstrap);
    bad['static_resource'] = bad['static_resources'];
    delete bad['static_resources'];
    const errors = knownToProtos(schema.check(BOOTSTRAP, bad));
    assert.equal(errors.length, 1);
    assert.match(errors[0], /^\$\.static_resource: unknown field "static_resource" of envoy\.config\.bootstrap\.v3\.Bootstrap$/);
  });

  it('rejects a misspelt field deep inside an Any (ext_proc processing_mode)', () => {
    const bad = copy(bootstrap);
    const mode = asObject(filterConfig(bad, 'envoy.filters.http.ext_proc')['processing_mode'], 'processing_mode');
    mode['request_body_mod'] = mode['request_body_mode'];
    delete mode['request_body_mode'];
    const errors = knownToProtos(schema.check(BOOTSTRAP, bad));
    assert.equal(errors.length, 1);
    assert.match(errors[0], /processing_mode\.request_body_mod: unknown field "request_body_mod" of envoy\.extensions\.filters\.http\.ext_proc\.v3\.ProcessingMode/);
  });

  it('rejects a misspelt field in a per-route Any', () => {
    const bad = copy(bootstrap);
    const perRoute = asObject(dig(routes(bad)[0], ['typed_per_filter_config', 'envoy.filters.http.ext_authz']), 'per-route');
    perRoute['check_setting'] = perRoute['check_settings'];
    delete perRoute['check_settings'];
    const errors = knownToProtos(schema.check(BOOTSTRAP, bad));
    assert.equal(errors.length, 2);
    assert.match(errors[0], /unknown field "check_setting" of envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthzPerRoute/);
    // ...and with its only member gone, the required oneof is now unset (protoc-gen-validate rule).
    assert.match(errors[1], /oneof override of envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthzPerRoute is required/);
  });

  it('rejects an undefined enum name', () => {
    const bad = copy(bootstrap);
    asObject(filterConfig(bad, 'envoy.filters.http.ext_proc')['processing_mode'], 'mode')['response_body_mode'] = 'BUFFER';
    const errors = knownToProtos(schema.check(BOOTSTRAP, bad));
    assert.equal(errors.length, 1);
    assert.match(errors[0], /response_body_mode: string "BUFFER" is not a value of enum BodySendMode/);
  });

  it('rejects Durations that are not proto3 JSON ("250ms", bare numbers)', () => {
    for (const timeout of ['250ms', 0.25, '0.25']) {
      const bad = copy(bootstrap);
      asObject(filterConfig(bad, 'envoy.filters.http.ext_authz')['grpc_service'], 'grpc_service')['timeout'] = timeout;
      const errors = knownToProtos(schema.check(BOOTSTRAP, bad));
      assert.equal(errors.length, 1, `timeout ${String(timeout)}`);
      assert.match(errors[0], /grpc_service\.timeout: expected a Duration string/);
    }
  });

  it('rejects an @type that is not among Envoy protos', () => {
    const bad = copy(bootstrap);
    filterConfig(bad, 'envoy.filters.http.router')['@type'] = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr';
    const errors = knownToProtos(schema.check(BOOTSTRAP, bad));
    assert.equal(errors.length, 1);
    assert.match(errors[0], /unknown type envoy\.extensions\.filters\.http\.router\.v3\.Routr/);
  });

  it('rejects a oneof set twice and a required field left out', () => {
    const twice = copy(bootstrap);
    const grpc = asObject(filterConfig(twice, 'envoy.filters.http.ext_authz')['grpc_service'], 'grpc_service');
    grpc['google_grpc'] = { target_uri: 'mesh-pep:9001', stat_prefix: 'mesh_pep' };
    assert.match(schema.check(BOOTSTRAP, twice).join('\n'), /oneof target_specifier of envoy\.config\.core\.v3\.GrpcService has more than one member set: envoy_grpc, google_grpc/);

    const missing = copy(bootstrap);
    delete filterConfig(missing, 'envoy.filters.http.ext_proc')['grpc_service'];
    assert.match(schema.check(BOOTSTRAP, missing).join('\n'), /field grpc_service of envoy\.extensions\.filters\.http\.ext_proc\.v3\.ExternalProcessor is required/);
  });

  it('rejects wrong value types and the same field under both names', () => {
    const bad = copy(bootstrap);
    const authz = filterConfig(bad, 'envoy.filters.http.ext_authz');
    authz['failure_mode_allow'] = 'false';
    authz['failureModeAllow'] = false;
    const errors = schema.check(BOOTSTRAP, bad).join('\n');
    assert.match(errors, /failure_mode_allow: expected true or false, got string "false"/);
    assert.match(errors, /field failure_mode_allow given twice/);
  });
});

describe('envoy/envoy.yaml wiring matches mesh-pep', () => {
  it('runs ext_authz, then ext_proc, then the router last', () => {
    const names = httpFilters(bootstrap).map((f) => f['name']);
    assert.deepEqual(names, ['envoy.filters.http.ext_authz', 'envoy.filters.http.ext_proc', 'envoy.filters.http.router']);
  });

  it('normalises paths before routing and filters, and refuses escaped slashes (issue 17, finding 6)', () => {
    const h = hcm(bootstrap);
    assert.equal(h['normalize_path'], true);
    assert.equal(h['merge_slashes'], true);
    assert.equal(h['path_with_escaped_slashes_action'], 'REJECT_REQUEST');
  });

  it('ext_authz is gRPC v3 and fails closed', () => {
    const authz = filterConfig(bootstrap, 'envoy.filters.http.ext_authz');
    assert.equal(authz['transport_api_version'], 'V3');
    assert.equal(authz['failure_mode_allow'], false);
    assert.equal(dig(authz, 'grpc_service.envoy_grpc.cluster_name'), 'mesh_pep');
    assert.equal(authz['http_service'], undefined, 'gRPC, so every request header (authorization too) is sent');
  });

  it('ext_proc uses exactly the processing modes the server implements and gets the Check metadata', () => {
    const proc = filterConfig(bootstrap, 'envoy.filters.http.ext_proc');
    assert.equal(proc['failure_mode_allow'], false);
    assert.equal(dig(proc, 'grpc_service.envoy_grpc.cluster_name'), 'mesh_pep');
    const mode = asObject(proc['processing_mode'], 'processing_mode');
    for (const [field, allowed] of Object.entries(SERVER.processingModes)) {
      assert.ok(allowed.includes(String(mode[field])), `${field}=${String(mode[field])} is one of ${allowed.join('/')}`);
    }
    assert.deepEqual(Object.keys(mode).sort(), Object.keys(SERVER.processingModes).sort(), 'every mode is explicit');
    assert.ok(asArray(dig(proc, 'metadata_options.forwarding_namespaces.untyped'), 'untyped').includes(SERVER.authzMetadataNamespace));
    assert.equal(dig(proc, 'mutation_rules.allow_envoy'), true);
  });

  it('every route names a policy domain of the bundled policy, and together they cover all of them', () => {
    const seen = routes(bootstrap).map((r) => dig(r, ['typed_per_filter_config', 'envoy.filters.http.ext_authz', 'check_settings', 'context_extensions', 'domain']));
    assert.deepEqual([...seen].sort(), Object.keys(SERVER.bundledDomains).sort());
  });

  it('the bundled policy defines the domains the routes name', () => {
    assert.ok(fs.existsSync(repoPath('config', 'security_mesh.yaml')), 'config/security_mesh.yaml is missing');
    const domains = asArray(dig(readYaml('config', 'security_mesh.yaml'), 'security_mesh.domains'), 'domains');
    const byName = Object.fromEntries(domains.map((d) => [String(asObject(d, 'domain')['name']), String(asObject(d, 'domain')['tier'])]));
    for (const [name, tier] of Object.entries(SERVER.bundledDomains)) assert.equal(byName[name], tier, `domain ${name}`);
  });

  it('every referenced cluster exists; gRPC clusters speak HTTP/2 and the PEP is on its gRPC port', () => {
    const byName = new Map(clusters(bootstrap).map((c) => [String(c['name']), c]));
    const referenced = new Set<string>(routes(bootstrap).map((r) => String(dig(r, 'route.cluster'))));
    const grpcClusters = new Set<string>([
      String(dig(filterConfig(bootstrap, 'envoy.filters.http.ext_authz'), 'grpc_service.envoy_grpc.cluster_name')),
      String(dig(filterConfig(bootstrap, 'envoy.filters.http.ext_proc'), 'grpc_service.envoy_grpc.cluster_name')),
      String(dig(hcm(bootstrap), 'tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name')),
    ]);
    for (const name of [...referenced, ...grpcClusters]) assert.ok(byName.has(name), `cluster ${name} defined`);
    for (const name of grpcClusters) {
      const http2 = dig(byName.get(name), [
        'typed_extension_protocol_options', 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions', 'explicit_http_config', 'http2_protocol_options',
      ]);
      assert.deepEqual(http2, {}, `${name} uses HTTP/2`);
    }
    const pep = dig(byName.get('mesh_pep'), 'load_assignment.endpoints.0.lb_endpoints.0.endpoint.address.socket_address');
    assert.equal(asObject(pep, 'mesh_pep address')['port_value'], SERVER.grpcPort);
  });
});
