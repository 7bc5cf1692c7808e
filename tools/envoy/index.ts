export { ensureEnvoy, EnvoyUnavailableError, ENVOY_WHEEL, REPO_ROOT, type EnvoyBinary } from './binary.js';
export { renderEnvoyConfig, readShipped, connectionManager, httpFilter, clusterNames, SHIPPED_ENVOY_CONFIG, type JsonObject, type Json, type Endpoint, type RenderOptions } from './config.js';
export { startEnvoy, validateEnvoyConfig, type RunningEnvoy, type StartEnvoyOptions } from './process.js';
export { startMeshPep, freePort, MESH_PEP_MAIN, type MeshPepProcess, type MeshPepProcessOptions } from './mesh-pep.js';
