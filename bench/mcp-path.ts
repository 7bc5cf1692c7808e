import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ExtProcStream } from '../src/envoy/ext-proc/stream.js';
import { decodeRequest, encodeResponse, type DecodedOrNot } from '../src/envoy/ext-proc/wire.js';
import { extProcServiceDefinition } from '../src/envoy/ext-proc/service.js';
import { loadServices } from '../src/envoy/protos.js';
import { inspectRequest } from '../src/protocols/index.js';
import { startServer } from '../src/server/start.js';
import { createLogger } from '../src/telemetry/logger.js';
import { grpcFrame } from './frames.js';

/**
 * `node dist/bench/mcp-path.js [rounds]`: the added cost of the MCP rules on ext_proc's path. One
 * exchange = request headers + a BUFFERED 1 KiB `tools/call` body, through the server's own code
 * (deserializer, decodeRequest, ExtProcStream, encodeResponse, serializer, gRPC frame copy), in
 * process. Two domains that differ only in their `mcp` section; paired rounds, alternating which goes
 * first; per round the p50 of each, then the median over rounds of the difference, with its spread.
 */
const POLICY = `security_mesh:
  identity: {issuer: https://issuer.bench, audiences: [agent-mesh], jwks_file: keys/issuer.jwks.json}
  keys: {dir: keys}
  audit: {file: audit/audit.jsonl}
  domains:
    - name: plain
      tier: RETRIEVAL
      allowed_roles: [EXECUTOR]
      audit_level: OUTPUT_ONLY
    - name: mcp
      tier: RETRIEVAL
      allowed_roles: [EXECUTOR]
      audit_level: OUTPUT_ONLY
      mcp:
        methods: [initialize, notifications/initialized, ping, tools/list, tools/call]
        tools:
          - {name: search_docs, roles: [EXECUTOR]}
          - {name: "fs_read_*", roles: [EXECUTOR]}
          - name: transfer_funds
            roles: [EXECUTOR]
            arguments:
              amount: {type: number, max: 1000}
              currency: {enum: [EUR, USD]}
              to_account: {type: string, pattern: "^DE[0-9]{20}$", max_length: 22}
            required: [amount, currency, to_account]
`;

function body1KiB(): Buffer {
  const base = { jsonrpc: '2.0', id: 42, method: 'tools/call', params: { name: 'transfer_funds', arguments: { amount: 250, currency: 'EUR', to_account: 'DE89370400440532013000', memo: '' } } };
  const pad = 1024 - Buffer.byteLength(JSON.stringify(base));
  base.params.arguments.memo = 'x'.repeat(pad);
  const out = Buffer.from(JSON.stringify(base));
  if (out.length !== 1024) throw new Error(`body is ${out.length} bytes`);
  return out;
}

function headersMessage(domain: string, length: number): object {
  const h = [[':authority', 'tools.agents.svc'], [':path', '/mcp'], [':method', 'POST'], ['content-type', 'application/json'], ['content-length', String(length)]];
  return {
    request_headers: { headers: { headers: h.map(([key, v]) => ({ key, raw_value: Buffer.from(v!, 'latin1') })) }, end_of_stream: false },
    metadata_context: {
      filter_metadata: {
        'envoy.filters.http.ext_authz': { fields: { domain: { stringValue: domain }, tier: { stringValue: 'RETRIEVAL' }, role: { stringValue: 'EXECUTOR' }, agent_id: { stringValue: 'agent-7' } } },
      },
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 15);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-bench-mcp-'));
  await writeFile(path.join(dir, 'policy.yaml'), POLICY);
  const server = await startServer({ configFile: path.join(dir, 'policy.yaml'), grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', log: createLogger('silent'), initDevKeys: true });
  try {
    const rt = server.runtime;
    const wire = loadServices().ExternalProcessor.service.Process!;
    const def = extProcServiceDefinition()['Process']!;
    const encodeReq = wire.requestSerialize as (v: object) => Buffer;
    const deserialize = def.requestDeserialize as (b: Buffer) => DecodedOrNot;
    const serialize = def.responseSerialize as (v: object) => Buffer;
    const body = body1KiB();
    const bodyBytes = encodeReq({ request_body: { body, end_of_stream: true } });
    const headers = { plain: encodeReq(headersMessage('plain', body.length)), mcp: encodeReq(headersMessage('mcp', body.length)) };
    const exchange = async (domain: 'plain' | 'mcp') => {
      const stream = new ExtProcStream({ ctx: rt });
      let last: object | undefined;
      for (const bytes of [headers[domain], bodyBytes]) {
        const out = await stream.handle(decodeRequest(deserialize(Buffer.from(bytes))));
        if (out) {
          grpcFrame(serialize(encodeResponse(out)));
          last = out;
        }
      }
      if (!last || (last as { type: string }).type !== 'body') throw new Error(`${domain}: the body was not answered as allowed`);
    };
    const p50 = async (domain: 'plain' | 'mcp', n: number) => {
      const t: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await exchange(domain);
        t.push(performance.now() - t0);
      }
      return median(t) * 1000;
    };
    for (const d of ['plain', 'mcp'] as const) await p50(d, 2000); // warm-up
    const diffs: number[] = [];
    const plain: number[] = [];
    const mcp: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const order: Array<'plain' | 'mcp'> = r % 2 === 0 ? ['plain', 'mcp'] : ['mcp', 'plain'];
      const got: Record<string, number> = {};
      for (const d of order) got[d] = await p50(d, 2000);
      plain.push(got['plain']!);
      mcp.push(got['mcp']!);
      diffs.push(got['mcp']! - got['plain']!);
    }
    const policy = rt.policy().domainsByName.get('mcp')!.protocol!;
    const step: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t: number[] = [];
      for (let i = 0; i < 5000; i++) {
        const t0 = performance.now();
        inspectRequest(policy, 'EXECUTOR', body, false);
        t.push(performance.now() - t0);
      }
      step.push(median(t) * 1000);
    }
    const fmt = (xs: number[]) => `${median(xs).toFixed(1)} µs (rounds ${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
    process.stdout.write(`1 KiB tools/call, ${rounds} paired rounds of 2000 exchanges\n`);
    process.stdout.write(`ext_proc exchange p50, no mcp section   ${fmt(plain)}\n`);
    process.stdout.write(`ext_proc exchange p50, mcp rules        ${fmt(mcp)}\n`);
    process.stdout.write(`added p50 (paired difference)           ${fmt(diffs)}\n`);
    process.stdout.write(`protocol step alone (inspectRequest) p50 ${fmt(step)}\n`);
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`mcp-path failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
