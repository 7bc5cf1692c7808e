// The ext_proc Envoy peer lives in src/envoy/peer/ so the demo, the probe and the benchmarks drive the
// server exactly as the tests do; tests import it from here.
export * from '../../src/envoy/peer/ext-proc-peer.js';
