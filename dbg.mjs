import { loadEnvoySchema } from './dist/test/deploy/support/envoy-schema.js';
import { readYaml } from './dist/test/deploy/support/repo.js';
const s = loadEnvoySchema();
try { console.log(s.check('envoy.config.bootstrap.v3.Bootstrap', readYaml('envoy','envoy.yaml'))); } catch (e) { console.log(e) }
