import type { AddressInfo } from 'node:net';
import type { SharedIdentityPeer } from '../policy/guards/shared-identity.js';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { createAdminService } from '../admin/admin-service.js';
import { createAdminHttpServer } from '../admin/http.js';
import { checkServiceDefinition, createCheckService } from '../envoy/check/service.js';
import { createExtProcService, extProcServiceDefinition } from '../envoy/ext-proc/service.js';
import { healthPackageDefinition, loadServices, packageDefinition } from '../envoy/protos.js';
import { createDlpScanFor } from '../dlp/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServerTlsSettings } from '../config/types.js';
import { limitStreams } from './overload.js';
import { ReloadableServerCredentials } from './tls.js';
import { clientAllowListInterceptor } from './client-identity.js';
import { Runtime } from './runtime.js';
import type { Tracing } from '../telemetry/tracing.js';
import type { AuditSink } from '../audit/record.js';

export interface StartOptions {
  /** Tracing to use instead of the one configured from OTEL_* (tests pass their own exporter). */
  tracing?: Tracing;
  configFile: string;
  grpcAddress?: string;
  adminAddress?: string;
  initDevKeys?: boolean;
  /** Watch the policy file and reload on change (SIGHUP always reloads when signals are installed). */
  watchPolicy?: boolean;
  log?: Logger;
  /** Longest time `close()` waits for in-flight calls before cancelling them. */
  drainTimeoutMs?: number;
  /**
   * How long `close()` keeps answering after readiness went 503: endpoints (Kubernetes, Envoy's
   * health checks) notice a not-ready PEP only after a moment, and calls arriving meanwhile must not fail.
   */
  drainDelayMs?: number;
  /** Serve the admin HTTP listener (default true). Cluster workers leave it to the primary (`server/workers.ts`). */
  adminHttp?: boolean;
  /** Audit sink to use instead of a file sink on `audit.file` (cluster workers relay to the primary). */
  auditSink?: AuditSink;
  /** TLS/mTLS for the gRPC listener; beats the policy's `server.tls` (docs/hardening.md). */
  tls?: ServerTlsSettings;
  /** Where a cluster worker shares shared-identity observations (the primary keeps the one view). */
  sharedIdentityPeer?: SharedIdentityPeer;
}

export interface RunningServer {
  runtime: Runtime;
  grpcPort: number;
  adminPort: number;
  /** Readiness 503 and health NOT_SERVING at once, then in-flight calls finish, then listeners close. */
  close(): Promise<void>;
}

function splitAddress(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  if (i <= 0) throw new Error(`address "${addr}" must be HOST:PORT`);
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`address "${addr}" has no valid port`);
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const grpcAddress = opts.grpcAddress ?? '0.0.0.0:9001';
  const adminAddress = opts.adminAddress ?? '0.0.0.0:9090';
  const rt = await Runtime.create({ configFile: opts.configFile, initDevKeys: opts.initDevKeys, log: opts.log, auditSink: opts.auditSink, tracing: opts.tracing, sharedIdentityPeer: opts.sharedIdentityPeer });

  const services = loadServices();
  const tlsFiles = opts.tls ?? rt.policy().server?.tls;
  // Only verified client certificates carry identities: without mTLS there is nothing to allow-list
  // (validation refuses allowed_clients without client_ca_file).
  const allowedClients = (): readonly string[] | undefined =>
    tlsFiles?.clientCaFile === undefined ? undefined : (opts.tls?.allowedClients ?? rt.policy().server?.tls?.allowedClients);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
    interceptors: [clientAllowListInterceptor(allowedClients, (peer) => rt.log.warn({ peer }, 'gRPC call refused: client identity not in server.tls.allowed_clients'))],
  });
  server.addService(checkServiceDefinition(), createCheckService(rt));
  server.addService(extProcServiceDefinition(), limitStreams(rt, createExtProcService(rt, { scanFor: createDlpScanFor() })));
  server.addService(services.Admin.service, createAdminService(rt));
  const health = new HealthImplementation({
    '': 'NOT_SERVING',
    'envoy.service.auth.v3.Authorization': 'NOT_SERVING',
    'envoy.service.ext_proc.v3.ExternalProcessor': 'NOT_SERVING',
  });
  health.addToServer(server);
  // Reflection lists every service on the port, the health service included (its definition ships
  // with grpc-health-check, not with our proto set).
  new ReflectionService({ ...packageDefinition(), ...healthPackageDefinition() }).addToServer(server);

  let tlsCreds: ReloadableServerCredentials | undefined;
  const grpcPort = await (async () => {
    if (tlsFiles) {
      tlsCreds = await ReloadableServerCredentials.create(tlsFiles, { minVersion: () => rt.policy().global.tlsMinVersion, log: rt.log });
      rt.store.onChange(() => void tlsCreds?.refresh());
    }
    const creds = tlsCreds ?? grpc.ServerCredentials.createInsecure();
    return new Promise<number>((resolve, reject) => server.bindAsync(grpcAddress, creds, (err, port) => (err ? reject(err) : resolve(port))));
  })().catch(async (e: Error) => {
    tlsCreds?.close();
    await rt.close();
    throw new Error(`cannot listen for gRPC on ${grpcAddress}: ${e.message}`);
  });

  const admin = createAdminHttpServer(rt);
  const { host, port } = splitAddress(adminAddress);
  const adminPort = await new Promise<number>((resolve, reject) => {
    if (opts.adminHttp === false) return resolve(0);
    admin.once('error', reject);
    admin.listen(port, host, () => resolve((admin.address() as AddressInfo).port));
  }).catch(async (e: Error) => {
    server.forceShutdown();
    await rt.close();
    throw new Error(`cannot listen for admin HTTP on ${adminAddress}: ${e.message}`);
  });

  const setServing = (s: 'SERVING' | 'NOT_SERVING') => {
    for (const name of ['', 'envoy.service.auth.v3.Authorization', 'envoy.service.ext_proc.v3.ExternalProcessor']) health.setStatus(name, s);
  };
  rt.listening = true;
  setServing('SERVING');
  if (opts.watchPolicy) rt.store.watch((r) => rt.recordReload(r));
  rt.log.info({ grpc: `${grpcAddress.replace(/:\d+$/, '')}:${grpcPort}`, admin: opts.adminHttp === false ? 'served by the cluster primary' : `${host}:${adminPort}`, policy: rt.policy().source, policy_hash: rt.policy().hash }, 'mesh-pep serving');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      rt.draining = true;
      setServing('NOT_SERVING');
      if (opts.drainDelayMs) await new Promise((r) => setTimeout(r, opts.drainDelayMs));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, opts.drainTimeoutMs ?? 10_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (admin.listening) await new Promise<void>((resolve) => admin.close(() => resolve()));
      admin.closeAllConnections?.();
      tlsCreds?.close();
      await rt.close();
    })());

  return { runtime: rt, grpcPort, adminPort, close };
}
