/**
 * Renders a shipped Envoy bootstrap (envoy/envoy.yaml) for this machine: loopback addresses, ephemeral
 * ports, and the real addresses of the clusters it names. Everything else stays as shipped, so the
 * suite exercises the file operators copy, not a test-only twin that can drift.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { REPO_ROOT } from './binary.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export interface Endpoint {
  host: string;
  port: number;
}

export interface RenderOptions {
  /** Every cluster of the file must be given an endpoint: a forgotten one would point at a compose host. */
  clusters: Record<string, Endpoint>;
  /** Port of each listener by name; unnamed listeners and missing names get 0 (ephemeral). */
  listenerPorts?: Record<string, number>;
  /** A deliberate, named change to the shipped file (e.g. another body mode); the test states why. */
  patch?: (bootstrap: JsonObject) => void;
}

export const SHIPPED_ENVOY_CONFIG = path.join(REPO_ROOT, 'envoy', 'envoy.yaml');

export function readShipped(file = SHIPPED_ENVOY_CONFIG): JsonObject {
  return YAML.parse(readFileSync(file, 'utf8')) as JsonObject;
}

function obj(v: Json | undefined, what: string): JsonObject {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`Envoy config: ${what} is not an object`);
  return v;
}

function arr(v: Json | undefined, what: string): Json[] {
  if (!Array.isArray(v)) throw new Error(`Envoy config: ${what} is not a list`);
  return v;
}

function setSocket(holder: JsonObject, host: string, port: number): void {
  const address = obj(holder.address, 'address');
  const socket = obj(address.socket_address, 'socket_address');
  socket.address = host;
  socket.port_value = port;
}

export function renderEnvoyConfig(bootstrap: JsonObject, opts: RenderOptions): JsonObject {
  const cfg = structuredClone(bootstrap);
  if (cfg.admin) setSocket(obj(cfg.admin, 'admin'), '127.0.0.1', 0);
  const statics = obj(cfg.static_resources, 'static_resources');
  for (const l of arr(statics.listeners ?? [], 'listeners')) {
    const listener = obj(l, 'listener');
    setSocket(listener, '127.0.0.1', opts.listenerPorts?.[String(listener.name)] ?? 0);
  }
  const unmapped: string[] = [];
  for (const c of arr(statics.clusters ?? [], 'clusters')) {
    const cluster = obj(c, 'cluster');
    const name = String(cluster.name);
    const ep = opts.clusters[name];
    if (!ep) {
      unmapped.push(name);
      continue;
    }
    const la = obj(cluster.load_assignment, `cluster ${name} load_assignment`);
    for (const group of arr(la.endpoints, `cluster ${name} endpoints`)) {
      for (const lb of arr(obj(group, 'endpoints').lb_endpoints, `cluster ${name} lb_endpoints`)) {
        setSocket(obj(obj(lb, 'lb_endpoint').endpoint, 'endpoint'), ep.host, ep.port);
      }
    }
  }
  if (unmapped.length) throw new Error(`Envoy config: no endpoint given for cluster(s) ${unmapped.join(', ')}`);
  opts.patch?.(cfg);
  return cfg;
}

/** The HttpConnectionManager of a listener (the first one when no name is given). */
export function connectionManager(cfg: JsonObject, listenerName?: string): JsonObject {
  const listeners = arr(obj(cfg.static_resources, 'static_resources').listeners, 'listeners').map((l) => obj(l, 'listener'));
  const listener = listenerName ? listeners.find((l) => l.name === listenerName) : listeners[0];
  if (!listener) throw new Error(`Envoy config: no listener ${listenerName ?? ''}`);
  for (const chain of arr(listener.filter_chains, 'filter_chains')) {
    for (const f of arr(obj(chain, 'filter_chain').filters, 'filters')) {
      const filter = obj(f, 'filter');
      if (filter.name === 'envoy.filters.network.http_connection_manager') return obj(filter.typed_config, 'hcm typed_config');
    }
  }
  throw new Error('Envoy config: no http_connection_manager');
}

/** The typed_config of an HTTP filter, e.g. `envoy.filters.http.ext_proc`, to patch in place. */
export function httpFilter(cfg: JsonObject, filterName: string, listenerName?: string): JsonObject {
  const hcm = connectionManager(cfg, listenerName);
  for (const f of arr(hcm.http_filters, 'http_filters')) {
    const filter = obj(f, 'http_filter');
    if (filter.name === filterName) return obj(filter.typed_config, `${filterName} typed_config`);
  }
  throw new Error(`Envoy config: no HTTP filter ${filterName}`);
}

export function clusterNames(cfg: JsonObject): string[] {
  return arr(obj(cfg.static_resources, 'static_resources').clusters ?? [], 'clusters').map((c) => String(obj(c, 'cluster').name));
}
