import * as grpc from '@grpc/grpc-js';
import { decodeCheckRequest, encodeCheckResponse } from '../src/envoy/check/codec.js';
import { checkRequestToAttributes } from '../src/envoy/check/request.js';
import { decisionToCheckResponse } from '../src/envoy/check/response.js';
import { checkServiceDefinition, createCheckService } from '../src/envoy/check/service.js';
import { loadServices } from '../src/envoy/protos.js';
import { decide } from '../src/policy/decide.js';
import { authorize } from '../src/server/authorize.js';
import { startServer } from '../src/server/start.js';
import { createTracing, metadataCarrier } from '../src/telemetry/tracing.js';
import { createLogger } from '../src/telemetry/logger.js';
import { createBenchFixture } from './fixture.js';
import { fastestBatchUs } from './timing.js';
import { encodeCheckRequest, envoyCheckRequest } from './frames.js';

/**
 * `node dist/bench/hot-path.js`: the Check path stage by stage, in process (no network), in µs per
 * call — the least noisy way to see what each part costs. Each stage runs in batches and reports the
 * fastest batch, so a busy machine inflates the figures less.
 */
async function timeIt(name: string, n: number, fn: () => unknown | Promise<unknown>): Promise<void> {
  process.stdout.write(`${name.padEnd(44)} ${(await fastestBatchUs(n, fn)).toFixed(2).padStart(8)} µs\n`);
}

async function main(): Promise<void> {
  const fx = await createBenchFixture();
  const server = await startServer({ configFile: fx.policyFile, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', log: createLogger('silent') });
  try {
    const rt = server.runtime;
    const [token] = await fx.mint({ agent: 'agent-7', role: 'RETRIEVER' });
    const svc = loadServices().Authorization.service.Check!;
    const decoded = (name: string) => svc.requestDeserialize(encodeCheckRequest(envoyCheckRequest({ domain: name, token }))) as object;
    const plain = decoded('bench_plain');
    const masked = decoded('bench_masked');
    const attrs = checkRequestToAttributes(plain);
    const md = new grpc.Metadata();
    md.set('traceparent', '00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01');
    const deps = { policy: rt.policy(), credentials: rt.credentials(), pseudonyms: rt.pseudonyms, guards: rt.guards() };
    const decision = await decide(attrs, deps);
    const response = decisionToCheckResponse(decision);
    const bytes = encodeCheckRequest(envoyCheckRequest({ domain: 'bench_plain', token }));
    const check = createCheckService(rt).Check as unknown as (call: object, cb: (e: unknown, r: unknown) => void) => void;
    const N = 20_000;
    // proto-loader's generic codec (what the bare server uses) and Check's own (what the server uses).
    await timeIt('protobuf decode CheckRequest (proto-loader)', N, () => svc.requestDeserialize(bytes));
    await timeIt('protobuf decode CheckRequest (Check codec)', N, () => decodeCheckRequest(bytes));
    await timeIt('checkRequestToAttributes (plain object)', N, () => checkRequestToAttributes(plain));
    const plainMessage = decodeCheckRequest(bytes);
    await timeIt('checkRequestToAttributes (decoded message)', N, () => checkRequestToAttributes(plainMessage));
    await timeIt('tracing.startServerSpan (no exporter)', N, () =>
      rt.tracing.startServerSpan('mesh.authz.check', { grpcMetadata: metadataCarrier(md), requestHeaders: attrs.headers }).end(),
    );
    // With an OTLP exporter configured (to a closed port: export fails in the background, creation
    // and batching of spans is what a Check pays).
    const live = createTracing({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' });
    await timeIt('span with OTLP exporter (start, attrs, end)', N, () => {
      const span = live.startServerSpan('mesh.authz.check', { grpcMetadata: metadataCarrier(md), requestHeaders: attrs.headers });
      span.setAttributes({ 'mesh.domain': 'bench_plain', 'mesh.tier': 'RETRIEVAL', 'mesh.decision': 'allow', 'mesh.reason': 'ok', 'mesh.agent.role': 'RETRIEVER' });
      span.end();
    });
    await live.shutdown().catch(() => undefined);
    await timeIt('credentials.verify (cached)', N, () => rt.credentials().verify(token!));
    await timeIt('decide (plain)', N, () => decide(attrs, deps));
    await timeIt('decide (masked)', N, () => decide(checkRequestToAttributes(masked), deps));
    await timeIt('authorize (plain: decide + metrics)', N, () => authorize(rt, attrs));
    await timeIt('decisionToCheckResponse', N, () => decisionToCheckResponse(decision));
    await timeIt('protobuf encode CheckResponse (proto-loader)', N, () => svc.responseSerialize(response));
    await timeIt('protobuf encode CheckResponse (Check codec)', N, () => encodeCheckResponse(response));
    await timeIt('metrics: counter inc + histogram observe', N, () => {
      rt.metrics.decisions.inc({ domain: 'bench_plain', decision: 'allow', reason: 'ok' });
      rt.metrics.decisionSeconds.observe(0.0001, { decision: 'allow' });
    });
    // The call needs getDeadline (the admission check reads it); without it the handler throws before
    // deciding and this stage would time the internal_error deny instead of an allow.
    const deadline = () => Infinity;
    let last: unknown;
    await timeIt('Check handler end to end (no network)', N, () =>
      new Promise<void>((resolve) => check({ request: plain, metadata: md, getDeadline: deadline }, (_e, r) => ((last = r), resolve()))),
    );
    if ((last as { status?: { code?: number } }).status?.code !== 0) throw new Error('hot path: the handler did not allow');
    const served = checkServiceDefinition().Check!;
    await timeIt('decode + handler + encode (as served)', N, () =>
      new Promise<void>((resolve) =>
        check({ request: served.requestDeserialize(bytes), metadata: md, getDeadline: deadline }, (_e, r) => (served.responseSerialize(r), resolve())),
      ),
    );
  } finally {
    await server.close();
    await fx.cleanup();
  }
}

void main();
