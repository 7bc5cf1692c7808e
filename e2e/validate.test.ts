/**
 * `envoy --mode validate` (Envoy 1.40) for every Envoy bootstrap the repository ships, exactly as
 * shipped: envoy/envoy.yaml is also the file envoy/docker-compose.yaml mounts, and the compose file
 * runs the same Envoy version the suite tests.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { ensureEnvoy, validateEnvoyConfig, REPO_ROOT, SHIPPED_ENVOY_CONFIG } from '../tools/envoy/index.js';

const COMPOSE = path.join(REPO_ROOT, 'envoy', 'docker-compose.yaml');

test('envoy/envoy.yaml passes envoy --mode validate as shipped (compose host names and all)', async () => {
  const bin = await ensureEnvoy();
  await validateEnvoyConfig(bin.path, await readFile(SHIPPED_ENVOY_CONFIG, 'utf8'));
});

test('envoy --mode validate refuses a broken copy, so the check above can fail', async () => {
  const bin = await ensureEnvoy();
  const text = (await readFile(SHIPPED_ENVOY_CONFIG, 'utf8')).replace('request_body_mode: BUFFERED', 'request_body_mode: BUFFER');
  await assert.rejects(validateEnvoyConfig(bin.path, text), /BUFFER/);
});

test('the compose file mounts the validated envoy.yaml and runs the Envoy version the suite tests', async () => {
  const bin = await ensureEnvoy();
  const compose = YAML.parse(await readFile(COMPOSE, 'utf8')) as { services: { envoy: { image: string; volumes: string[] } } };
  assert.deepEqual(compose.services.envoy.volumes, ['./envoy.yaml:/etc/envoy/envoy.yaml:ro']);
  const m = /^envoyproxy\/envoy:v(\d+\.\d+)\.\d+$/.exec(compose.services.envoy.image);
  assert.ok(m, compose.services.envoy.image);
  assert.equal(m[1], bin.version.split('.').slice(0, 2).join('.'));
});
