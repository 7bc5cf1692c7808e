/**
 * The Envoy configs of `npm run bench -- --envoy` are the shipped envoy/envoy.yaml minus named parts, and
 * real Envoy accepts each of them: a benchmark of a config operators never run would measure nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchEnvoyConfig } from '../bench/envoy.js';
import { ensureEnvoy } from '../tools/envoy/binary.js';
import { connectionManager, readShipped, type JsonObject } from '../tools/envoy/config.js';
import { validateEnvoyConfig } from '../tools/envoy/process.js';

const filterNames = (cfg: JsonObject) => (connectionManager(cfg).http_filters as JsonObject[]).map((f) => String(f.name));

test('bench variants: direct drops both mesh-pep filters, authz drops ext_proc, full keeps the shipped chain; Envoy validates each', async () => {
  const bin = await ensureEnvoy();
  const shipped = filterNames(readShipped());
  assert.deepEqual(shipped, ['envoy.filters.http.ext_authz', 'envoy.filters.http.ext_proc', 'envoy.filters.http.router']);
  const ports = { pep: 9001, upstream: 8080 };
  const expected = {
    direct: ['envoy.filters.http.router'],
    authz: ['envoy.filters.http.ext_authz', 'envoy.filters.http.router'],
    full: shipped,
  } as const;
  for (const [variant, filters] of Object.entries(expected) as [keyof typeof expected, readonly string[]][]) {
    const cfg = benchEnvoyConfig(variant, ports);
    assert.deepEqual(filterNames(cfg), filters, variant);
    // Tracing is off in every variant (no collector in the benchmark), and everything else is as shipped.
    assert.equal(connectionManager(cfg).tracing, undefined, variant);
    const shippedHcm = structuredClone(connectionManager(readShipped()));
    const hcm = structuredClone(connectionManager(cfg));
    for (const h of [shippedHcm, hcm]) {
      delete h.tracing;
      delete h.http_filters;
      if (variant === 'direct') for (const vh of (h.route_config as JsonObject).virtual_hosts as JsonObject[]) for (const r of vh.routes as JsonObject[]) delete r.typed_per_filter_config;
    }
    assert.deepEqual(hcm, shippedHcm, `${variant}: the rest of the connection manager is the shipped one`);
    await validateEnvoyConfig(bin.path, cfg);
  }
});
