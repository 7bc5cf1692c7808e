import { after, before } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createMeshFixture, type MeshFixture } from './mesh-fixture.js';
import { envoyCheckRequest as buildCheckRequest, type EnvoyCheckOptions } from '../../src/envoy/peer/check-request.js';
import { loadServices } from '../../src/envoy/protos.js';
import { startServer, type RunningServer } from '../../src/server/start.js';
import { createLogger } from '../../src/telemetry/logger.js';

/**
 * Plays Envoy's ext_authz side: CheckRequests shaped as an Istio sidecar sends them (lower-case
 * headers with pseudo-headers, Envoy/Istio request headers, SPIFFE principals, per-route context
 * extensions), over a real gRPC client built from Envoy's protos.
 */
export { CALLEE_SPIFFE, CALLER_SPIFFE } from '../../src/envoy/peer/check-request.js';

export interface EnvoyRequestOptions extends Omit<EnvoyCheckOptions, 'sidecarHeaders'> {
  /** Omit Envoy's usual request headers (x-forwarded-*, x-envoy-*, user-agent). */
  bare?: boolean;
}

/** Tests default to the sidecar's full header set (about 1 KiB), as real traffic carries. */
export function envoyCheckRequest(o: EnvoyRequestOptions = {}) {
  return buildCheckRequest({ ...o, sidecarHeaders: !o.bare });
}

export interface HeaderOptionView {
  header: { key: string; value: string };
  append?: { value: boolean } | null;
}

export interface CheckResponseView {
  status: { code: number; message: string };
  ok_response?: { headers: HeaderOptionView[]; headers_to_remove: string[] } | null;
  denied_response?: { status: { code: string | number }; headers: HeaderOptionView[]; body: string } | null;
  dynamic_metadata?: { fields: Record<string, { stringValue?: string }> } | null;
  http_response?: string;
}

export class CheckClient {
  private readonly client: grpc.Client;
  constructor(address: string) {
    this.client = new (loadServices().Authorization)(address, grpc.credentials.createInsecure());
  }
  check(req: unknown, metadata = new grpc.Metadata()): Promise<CheckResponseView> {
    return new Promise((resolve, reject) => {
      (this.client as unknown as { Check: Function }).Check(req, metadata, { deadline: Date.now() + 10_000 }, (err: Error | null, res: CheckResponseView) =>
        err ? reject(err) : resolve(res),
      );
    });
  }
  close(): void {
    this.client.close();
  }
}

export async function startTestServer(configFile: string, extra: { watchPolicy?: boolean } = {}): Promise<RunningServer & { address: string }> {
  const s = await startServer({
    configFile,
    grpcAddress: '127.0.0.1:0',
    adminAddress: '127.0.0.1:0',
    log: createLogger('silent'),
    drainTimeoutMs: 2000,
    ...extra,
  });
  return Object.assign(s, { address: `127.0.0.1:${s.grpcPort}` });
}

/** Header helpers for assertions. */
export function setHeaders(res: CheckResponseView): Map<string, string> {
  return new Map((res.ok_response?.headers ?? []).map((h) => [h.header.key, h.header.value]));
}

export function denyReason(res: CheckResponseView): string | undefined {
  return res.denied_response?.headers.find((h) => h.header.key === 'x-mesh-reason')?.header.value;
}

export function deniedHttpStatus(res: CheckResponseView): number {
  const c = res.denied_response?.status.code;
  const names: Record<string, number> = { Unauthorized: 401, Forbidden: 403, ServiceUnavailable: 503 };
  return typeof c === 'number' ? c : (names[String(c)] ?? Number(c));
}

/**
 * The usual test setup: a fixture policy with keys, the real server on 127.0.0.1 and a Check client,
 * created before the file's tests and torn down after. Fields are set once `before` has run.
 */
export function useCheckServer(opts: { yaml?: string; watchPolicy?: boolean } = {}) {
  const h = {} as { fx: MeshFixture; server: Awaited<ReturnType<typeof startTestServer>>; client: CheckClient };
  before(async () => {
    h.fx = await createMeshFixture(opts.yaml);
    h.server = await startTestServer(h.fx.policyFile, { watchPolicy: opts.watchPolicy });
    h.client = new CheckClient(h.server.address);
  });
  after(async () => {
    h.client?.close();
    await h.server?.close();
    await h.fx?.cleanup();
  });
  return h;
}
