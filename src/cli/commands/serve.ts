import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../errors.js';
import { isClusterWorker, parseWorkerCount, runClusterPrimary, runClusterWorker } from '../../server/workers.js';
import { createLogger } from '../../telemetry/logger.js';
import { UsageError, type CliCommand } from '../command.js';
import { BUNDLED_POLICY, configPath, parseDuration } from '../options.js';

export const command: CliCommand = {
  name: 'serve',
  summary: 'run the gRPC server (ext_authz, ext_proc, health, admin) and the admin HTTP server',
  help: `Usage: mesh-pep serve [--config FILE] [--grpc-address HOST:PORT] [--admin-address HOST:PORT]
                      [--init-keys | --no-init-keys] [--workers N|auto]

  --config FILE            policy file (env MESH_PEP_CONFIG; default: the bundled config/security_mesh.yaml)
  --grpc-address H:P       gRPC listener (env MESH_PEP_GRPC_ADDRESS; default 0.0.0.0:9001)
  --admin-address H:P      admin HTTP listener: /healthz /readyz /metrics (env MESH_PEP_ADMIN_ADDRESS; default 0.0.0.0:9090)
  --init-keys              create missing key files at start (default only for the bundled development policy)
  --drain-delay DURATION   after SIGTERM, keep answering this long with readiness 503 (default 3s)
  --workers N|auto         processes sharing the gRPC port (env MESH_PEP_WORKERS; default auto = the CPUs
                           this container may use, cgroup CPU limit included; 1 = one process, no cluster).
                           The primary serves admin HTTP and writes the one audit chain for all workers
  --tls-cert FILE          serve gRPC over TLS with this certificate chain (PEM; beats the policy's server.tls)
  --tls-key FILE           ... and this private key (PEM); both files are reloaded when they change
  --tls-client-ca FILE     require client certificates signed by this CA (mTLS); tls_min_version applies

Signals: SIGHUP reloads the policy (it is also reloaded when the file changes; a bad file keeps the
last good policy serving); SIGTERM/SIGINT drain: readiness goes 503, in-flight calls finish, then exit.`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        'grpc-address': { type: 'string' },
        'admin-address': { type: 'string' },
        'init-keys': { type: 'boolean' },
        'no-init-keys': { type: 'boolean' },
        'drain-delay': { type: 'string', default: '3s' },
        workers: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-client-ca': { type: 'string' },
      },
      strict: true,
    });
    const log = createLogger();
    const configFile = configPath(values.config);
    const initDevKeys = values['no-init-keys'] ? false : (values['init-keys'] ?? configFile === BUNDLED_POLICY);
    if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined) || (values['tls-client-ca'] && !values['tls-cert'])) {
      process.stderr.write('serve: --tls-cert and --tls-key go together (and --tls-client-ca needs both)\n');
      return 2;
    }
    const tls = values['tls-cert']
      ? { certFile: path.resolve(values['tls-cert']), keyFile: path.resolve(values['tls-key']!), clientCaFile: values['tls-client-ca'] ? path.resolve(values['tls-client-ca']) : undefined }
      : undefined;
    let workers: number;
    try {
      workers =
        values.workers !== undefined
          ? parseWorkerCount(values.workers)
          : parseWorkerCount(process.env.MESH_PEP_WORKERS ?? 'auto', 'MESH_PEP_WORKERS');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (workers > 1 || isClusterWorker()) {
      const cluster = {
        workers,
        configFile,
        grpcAddress: values['grpc-address'] ?? process.env.MESH_PEP_GRPC_ADDRESS ?? '0.0.0.0:9001',
        adminAddress: values['admin-address'] ?? process.env.MESH_PEP_ADMIN_ADDRESS ?? '0.0.0.0:9090',
        initDevKeys,
        drainDelayMs: parseDuration(values['drain-delay']!),
        tls,
        log,
      };
      try {
        return await (isClusterWorker() ? runClusterWorker(cluster) : runClusterPrimary(cluster));
      } catch (e) {
        if (e instanceof ConfigError) {
          process.stderr.write(e.message + '\n');
          return 1;
        }
        throw e;
      }
    }
    // Loaded only when serving in this process: a cluster primary never needs gRPC or the protos.
    const { startServer } = await import('../../server/start.js');
    let server;
    try {
      server = await startServer({
        configFile,
        grpcAddress: values['grpc-address'] ?? process.env.MESH_PEP_GRPC_ADDRESS ?? '0.0.0.0:9001',
        adminAddress: values['admin-address'] ?? process.env.MESH_PEP_ADMIN_ADDRESS ?? '0.0.0.0:9090',
        initDevKeys,
        watchPolicy: true,
        drainDelayMs: parseDuration(values['drain-delay']!),
        log,
        tls,
      });
    } catch (e) {
      if (e instanceof ConfigError) {
        process.stderr.write(e.message + '\n');
        return 1;
      }
      throw e;
    }
    const running = server;
    process.on('SIGHUP', () => void running.runtime.reload());
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info({ signal }, 'draining');
        void running.close().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    log.info('stopped');
    return 0;
  },
};
