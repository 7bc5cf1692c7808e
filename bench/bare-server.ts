import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../src/envoy/protos.js';

/**
 * The baseline: a bare `@grpc/grpc-js` server with the same proto loading as mesh-pep, answering every
 * Check with one fixed OK CheckResponse shaped like a real allow (the same header mutations and
 * metadata, so the response bytes match), and every ext_proc message with a plain CONTINUE of its
 * phase. The distance between this and mesh-pep is what the PEP itself costs.
 *
 * Usage: node dist/bench/bare-server.js HOST:PORT   (prints {"port": n} once listening)
 */
const FIXED_OK = {
  status: { code: 0, message: '' },
  ok_response: {
    headers: [
      ['x-agent-role', 'RETRIEVER'],
      ['x-mesh-domain', 'bench_plain'],
      ['x-mesh-tier', 'RETRIEVAL'],
      ['x-mesh-decision-id', '3f0c8a55-5b8e-4d7a-9b61-2f2a0f4c1d9e'],
      ['x-agent-id', 'agent-7'],
    ].map(([key, value]) => ({ header: { key, value }, append: { value: false } })),
    headers_to_remove: ['authorization'],
  },
  dynamic_metadata: {
    fields: {
      domain: { stringValue: 'bench_plain' },
      tier: { stringValue: 'RETRIEVAL' },
      role: { stringValue: 'RETRIEVER' },
      decision_id: { stringValue: '3f0c8a55-5b8e-4d7a-9b61-2f2a0f4c1d9e' },
      agent_id: { stringValue: 'agent-7' },
    },
  },
};

const PHASES = ['request_headers', 'response_headers', 'request_body', 'response_body', 'request_trailers', 'response_trailers'] as const;

function main(): void {
  const address = process.argv[2] ?? '127.0.0.1:0';
  const services = loadServices();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  server.addService(services.Authorization.service, {
    Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, FIXED_OK),
  });
  server.addService(services.ExternalProcessor.service, {
    Process: (call: grpc.ServerDuplexStream<Record<string, unknown>, object>) => {
      call.on('data', (m) => {
        const phase = PHASES.find((p) => m[p] != null) ?? 'request_headers';
        const trailers = phase.endsWith('trailers');
        call.write({ [phase]: trailers ? {} : { response: { status: 'CONTINUE' } } });
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      process.stderr.write(`bare server: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(JSON.stringify({ port }) + '\n');
  });
  process.on('SIGTERM', () => {
    server.forceShutdown();
    process.exit(0);
  });
}

main();
