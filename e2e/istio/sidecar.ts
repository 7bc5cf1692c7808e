/**
 * Envoy bootstraps shaped like the listeners istiod generates for a sidecar, with the chart's rendered
 * EnvoyFilter patches applied the way Istio applies them (INSERT_BEFORE the router, MERGE into the
 * virtual host). Istio itself cannot run here; what these reproduce is what decides the behaviour under
 * test: the cluster names (`outbound|9001||<fqdn>`), the filter chain order, the RBAC shadow rule plus
 * `filter_enabled_metadata` that Istio generates for a CUSTOM AuthorizationPolicy (istio/istio
 * pilot/pkg/security/authz/builder: `istio_ext_authz_shadow_effective_policy_id`), and, on the callee side
 * of every gRPC call, mesh-pep's own sidecar: an Envoy HTTP connection manager in front of mesh-pep.
 */
import { renderChart } from '../../test/deploy/support/helm-chart.js';
import { asArray, asObject, dig, repoPath, type Json as ChartJson } from '../../test/deploy/support/repo.js';
import type { Json, JsonObject } from '../../tools/envoy/index.js';

export const PEP_FQDN = 'mesh-pep.mesh-pep.svc.cluster.local';
export const PEP_CLUSTER = `outbound|9001||${PEP_FQDN}`;
export const CHART = repoPath('helm', 'mesh-pep');
export const RELEASE = { name: 'mesh-pep', namespace: 'mesh-pep' };

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const HTTP2 = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

export function chartObjects(overrides: ChartJson = {}): ChartJson[] {
  return renderChart(CHART, RELEASE, overrides).objects;
}

export function envoyFilter(objects: ChartJson[], name: string): ChartJson {
  const f = objects.find((o) => o['kind'] === 'EnvoyFilter' && dig(o, 'metadata.name') === name);
  if (!f) throw new Error(`no EnvoyFilter ${name} in the rendered chart`);
  return f;
}

export function patches(filter: ChartJson): ChartJson[] {
  return asArray(dig(filter, 'spec.configPatches'), 'configPatches').map((p) => asObject(p, 'patch'));
}

/**
 * The patch values of an EnvoyFilter, by kind: HTTP filters to insert, virtual-host merges by vhost name,
 * and merges into the listener's HTTP connection manager (the path normalisation settings).
 */
export function patchValues(
  filter: ChartJson,
  context: 'SIDECAR_INBOUND' | 'SIDECAR_OUTBOUND',
): { filters: JsonObject[]; vhostMerges: Array<{ vhost: string | undefined; value: JsonObject }>; hcmMerges: JsonObject[] } {
  const filters: JsonObject[] = [];
  const vhostMerges: Array<{ vhost: string | undefined; value: JsonObject }> = [];
  const hcmMerges: JsonObject[] = [];
  for (const p of patches(filter)) {
    if (dig(p, 'match.context') !== context) throw new Error(`patch for ${String(dig(p, 'match.context'))}, expected ${context}`);
    const value = structuredClone(asObject(dig(p, 'patch.value'), 'patch value')) as JsonObject;
    if (p['applyTo'] === 'HTTP_FILTER') {
      if (dig(p, 'patch.operation') !== 'INSERT_BEFORE' || dig(p, 'match.listener.filterChain.filter.subFilter.name') !== 'envoy.filters.http.router') {
        throw new Error('HTTP_FILTER patches are expected to go right before the router');
      }
      filters.push(value);
    } else if (p['applyTo'] === 'VIRTUAL_HOST') {
      if (dig(p, 'patch.operation') !== 'MERGE') throw new Error('VIRTUAL_HOST patches are expected to MERGE');
      const vhost = (p['match'] as { routeConfiguration?: { vhost?: { name?: string } } }).routeConfiguration?.vhost?.name;
      vhostMerges.push({ vhost, value });
    } else if (p['applyTo'] === 'NETWORK_FILTER') {
      if (dig(p, 'patch.operation') !== 'MERGE' || dig(p, 'match.listener.filterChain.filter.name') !== 'envoy.filters.network.http_connection_manager') {
        throw new Error('NETWORK_FILTER patches are expected to MERGE into the HTTP connection manager');
      }
      hcmMerges.push(asObject(value['typed_config'] as ChartJson, 'typed_config') as JsonObject);
    } else {
      throw new Error(`unexpected applyTo ${String(p['applyTo'])}`);
    }
  }
  return { filters, vhostMerges, hcmMerges };
}

/** Istio's MERGE: maps merge key by key, other values replace. */
export function merge(target: JsonObject, patch: JsonObject): JsonObject {
  for (const [k, v] of Object.entries(patch)) {
    const t = target[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && t && typeof t === 'object' && !Array.isArray(t)) merge(t, v);
    else target[k] = structuredClone(v);
  }
  return target;
}

function socket(host: string, port: number): JsonObject {
  return { socket_address: { address: host, port_value: port } };
}

function staticCluster(name: string, port: number, http2: boolean): JsonObject {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socket('127.0.0.1', port) } }] }] },
    ...(http2 ? { typed_extension_protocol_options: HTTP2 } : {}),
  };
}

/**
 * ext_authz as istiod generates it from the `envoyExtAuthzGrpc` extension provider (the chart's values),
 * enabled only where the RBAC shadow rule of a CUSTOM policy matched.
 */
export function istioExtAuthz(): JsonObject {
  return {
    name: 'envoy.filters.http.ext_authz',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
      grpc_service: { envoy_grpc: { cluster_name: PEP_CLUSTER, authority: PEP_FQDN }, timeout: '0.5s' },
      transport_api_version: 'V3',
      failure_mode_allow: false,
      status_on_error: { code: 'ServiceUnavailable' },
      filter_enabled_metadata: {
        filter: 'envoy.filters.http.rbac',
        path: [{ key: 'istio_ext_authz_shadow_effective_policy_id' }],
        value: { string_match: { prefix: 'istio-ext-authz' } },
      },
    },
  };
}

/** Istio's translation of a CUSTOM AuthorizationPolicy's rules into the RBAC shadow rule (paths/notPaths only). */
export function istioCustomRbac(policy: ChartJson): JsonObject {
  const rules = asArray(dig(policy, 'spec.rules'), 'rules').map((r) => asObject(r, 'rule'));
  const pathMatcher = (p: string): JsonObject => ({ url_path: { path: p.endsWith('*') ? { prefix: p.slice(0, -1) } : { exact: p } } });
  const policies: JsonObject = {};
  rules.forEach((rule, i) => {
    const permissions: Json[] = [];
    for (const to of (rule['to'] as ChartJson[] | undefined) ?? []) {
      const op = asObject(to['operation'], 'operation');
      if (op['paths']) permissions.push({ or_rules: { rules: (op['paths'] as string[]).map(pathMatcher) } });
      if (op['notPaths']) permissions.push({ not_rule: { or_rules: { rules: (op['notPaths'] as string[]).map(pathMatcher) } } });
    }
    policies[`istio-ext-authz-ns[istio-system]-policy[${String(dig(policy, 'metadata.name'))}]-rule[${i}]`] = {
      permissions: permissions.length === 0 ? [{ any: true }] : [{ and_rules: { rules: permissions } }],
      principals: [{ any: true }],
    };
  });
  return {
    name: 'envoy.filters.http.rbac',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
      shadow_rules: { action: 'DENY', policies },
      shadow_rules_stat_prefix: 'istio_ext_authz_',
    },
  };
}

/**
 * mesh-pep's own sidecar: an HTTP/2 listener in front of mesh-pep, as the pod's Envoy would be. The agent
 * sidecars' `outbound|9001||…` cluster points here, so the :authority they send is judged by an Envoy, as
 * in a cluster.
 */
function pepSidecarListener(port: number): JsonObject {
  return {
    name: 'mesh_pep_sidecar_inbound',
    address: socket('127.0.0.1', port),
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HCM,
          stat_prefix: 'mesh_pep_inbound',
          codec_type: 'HTTP2',
          route_config: {
            name: 'inbound|9001||',
            virtual_hosts: [{ name: 'inbound|grpc|9001', domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: 'inbound|9001||', timeout: '0s' } }] }],
          },
          http_filters: [ROUTER],
        },
      }],
    }],
  };
}

export interface SidecarPorts {
  /** mesh-pep's gRPC port. */
  pep: number;
  /** The port mesh-pep's own sidecar listens on (fixed before start: a cluster points at it). */
  pepSidecar: number;
  /** The application behind the sidecar (inbound) or the destination service (outbound). */
  app: number;
}

/** An agent's sidecar, inbound side: Istio's filters, then the chart's EnvoyFilter patches, then the router. */
export function inboundBootstrap(opts: { ports: SidecarPorts; customPolicy: ChartJson; filter: ChartJson }): JsonObject {
  const { filters, vhostMerges, hcmMerges } = patchValues(opts.filter, 'SIDECAR_INBOUND');
  const hcm: JsonObject = {
    '@type': HCM,
    stat_prefix: 'inbound_0.0.0.0_8080',
  };
  for (const m of hcmMerges) merge(hcm, m);
  const vhost: JsonObject = { name: 'inbound|http|8080', domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: 'inbound|8080||', timeout: '0s' } }] };
  for (const m of vhostMerges) merge(vhost, m.value);
  return {
    admin: { address: socket('127.0.0.1', 0) },
    static_resources: {
      listeners: [
        {
          name: 'virtualInbound',
          address: socket('127.0.0.1', 0),
          filter_chains: [{
            filters: [{
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                ...hcm,
                route_config: { name: 'inbound|8080||', virtual_hosts: [vhost] },
                http_filters: [istioCustomRbac(opts.customPolicy), istioExtAuthz(), ...filters, ROUTER],
              },
            }],
          }],
        },
        pepSidecarListener(opts.ports.pepSidecar),
      ],
      clusters: [
        staticCluster(PEP_CLUSTER, opts.ports.pepSidecar, true),
        staticCluster('inbound|9001||', opts.ports.pep, true),
        staticCluster('inbound|8080||', opts.ports.app, false),
      ],
    },
  };
}

/**
 * A calling agent's sidecar, outbound side: route configuration "8080" with one virtual host per
 * destination service, named "<host>:<port>" as Istio names them, and the chart's outbound patches.
 */
export function outboundBootstrap(opts: { ports: SidecarPorts; filter: ChartJson; services: string[] }): JsonObject {
  const { filters, vhostMerges } = patchValues(opts.filter, 'SIDECAR_OUTBOUND');
  const vhosts: JsonObject[] = opts.services.map((host) => {
    const short = host.split('.')[0];
    const cluster = `outbound|8080||${host}`;
    return {
      name: `${host}:8080`,
      domains: [host, `${host}:8080`, short, `${short}:8080`],
      routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster, timeout: '0s' } }],
    };
  });
  for (const m of vhostMerges) {
    const target = vhosts.find((v) => v['name'] === m.vhost);
    if (!target) throw new Error(`the outbound patch names vhost ${String(m.vhost)}, which Istio would not generate here`);
    merge(target, m.value);
  }
  return {
    admin: { address: socket('127.0.0.1', 0) },
    static_resources: {
      listeners: [
        {
          name: 'virtualOutbound_8080',
          address: socket('127.0.0.1', 0),
          filter_chains: [{
            filters: [{
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': HCM,
                stat_prefix: 'outbound_0.0.0.0_8080',
                route_config: { name: '8080', virtual_hosts: vhosts },
                http_filters: [...filters, ROUTER],
              },
            }],
          }],
        },
        pepSidecarListener(opts.ports.pepSidecar),
      ],
      clusters: [
        staticCluster(PEP_CLUSTER, opts.ports.pepSidecar, true),
        staticCluster('inbound|9001||', opts.ports.pep, true),
        ...opts.services.map((host) => staticCluster(`outbound|8080||${host}`, opts.ports.app, false)),
      ],
    },
  };
}
