export { ensureJaeger, buildJaeger, JaegerUnavailableError, JAEGER_VERSION, JAEGER_MODULE, JAEGER_BIN, type JaegerBinary } from './binary.js';
export { startJaeger, jaegerConfig, tag, serviceOf, parentOf, type RunningJaeger, type StartJaegerOptions, type JaegerTrace, type JaegerSpan, type JaegerTag } from './process.js';
