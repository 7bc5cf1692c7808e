import { PerformanceObserver } from 'node:perf_hooks';
import { ExtProcStream } from '../src/envoy/ext-proc/stream.js';
import { decodeRequest, encodeResponse, type DecodedOrNot } from '../src/envoy/ext-proc/wire.js';
import { extProcServiceDefinition } from '../src/envoy/ext-proc/service.js';
import { loadServices } from '../src/envoy/protos.js';
import { processBody } from '../src/protect/pipeline.js';
import { tierModule } from '../src/protect/registry.js';
import { startServer } from '../src/server/start.js';
import { createLogger } from '../src/telemetry/logger.js';
import { extProcRequestHeaders } from './drivers.js';
import { createBenchFixture } from './fixture.js';
import { BATCHES, fastestBatchUs } from './timing.js';
import { grpcFrame } from './frames.js';
import { jsonBody } from './json-body.js';

/**
 * `node dist/bench/extproc-path.js [KiB...]`: one ext_proc RETRIEVAL exchange (request headers, then a
 * BUFFERED JSON body) through the server's own code — the service's deserializer, `decodeRequest`,
 * `ExtProcStream`, `encodeResponse`, the serializer and gRPC's framing copy — in process, no network,
 * in µs per exchange (fastest of 7 batches), with the garbage collector's time per exchange over
 * all batches. On a shared 2-core machine this is far steadier than the driver's MB/s
 * (`npm run bench -- --only extproc`), which is what to compare when changing the ext_proc path.
 */
async function timeIt(name: string, n: number, fn: () => unknown | Promise<unknown>): Promise<void> {
  let gcMs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  });
  obs.observe({ entryTypes: ['gc'] });
  const best = await fastestBatchUs(n, fn);
  // GC entries are delivered asynchronously.
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  process.stdout.write(`${name.padEnd(52)} ${best.toFixed(1).padStart(8)} µs   GC ${((gcMs * 1000) / (BATCHES * n)).toFixed(1).padStart(6)} µs\n`);
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  const fx = await createBenchFixture();
  const server = await startServer({ configFile: fx.policyFile, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', log: createLogger('silent') });
  try {
    const rt = server.runtime;
    const wireDef = loadServices().ExternalProcessor.service.Process!;
    const def = extProcServiceDefinition()['Process']!;
    const encodeReq = wireDef.requestSerialize as (v: object) => Buffer;
    const deserialize = def.requestDeserialize as (b: Buffer) => DecodedOrNot;
    const serialize = def.responseSerialize as (v: object) => Buffer;
    const headersBytes = encodeReq(extProcRequestHeaders('bench_plain'));
    const retrieval = (await tierModule('RETRIEVAL')).handler;
    const domain = rt.policy().domainsByName.get('bench_plain')!;
    for (const kib of sizes.length ? sizes : [4, 64]) {
      const body = jsonBody(kib * 1024);
      const bodyBytes = encodeReq({ request_body: { body, end_of_stream: true } });
      const n = kib >= 64 ? 2_000 : 10_000;
      process.stdout.write(`--- ${kib} KiB JSON body\n`);
      // grpc-js hands the deserializer a fresh buffer per message (its frame decoder concatenates).
      await timeIt('deserialize request_body (service definition)', n, () => deserialize(Buffer.from(bodyBytes)));
      await timeIt('processBody (RETRIEVAL seal, digest, UTF-8 check)', n, () =>
        processBody({ ctx: { policy: rt.policy(), domain, contentType: 'application/json', direction: 'request' }, body, handler: retrieval }),
      );
      const sample = await processBody({ ctx: { policy: rt.policy(), domain, contentType: 'application/json', direction: 'request' }, body, handler: retrieval });
      const answer = encodeResponse({
        type: 'body',
        phase: 'request_body',
        body: { kind: 'replace', body: sample.kind === 'replace' ? sample.body : body },
        headers: { set: [['content-type', 'application/jose'], ['content-length', '1'], ['x-mesh-protected', 'RETRIEVAL']], remove: [] },
      });
      await timeIt('serialize the body answer (+ gRPC frame copy)', n, () => grpcFrame(serialize(answer)));
      await timeIt('whole exchange: headers + body, both answers', n, async () => {
        const stream = new ExtProcStream({ ctx: rt });
        for (const bytes of [headersBytes, bodyBytes]) {
          const out = await stream.handle(decodeRequest(deserialize(Buffer.from(bytes))));
          if (out) grpcFrame(serialize(encodeResponse(out)));
        }
      });
    }
  } finally {
    await server.close();
    await fx.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`extproc-path failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
