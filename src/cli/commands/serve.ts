import { parseArgs } from 'node:util';
import { ConfigError } from '../../errors.js';
import { startServer } from '../../server/start.js';
import { createLogger } from '../../telemetry/logger.js';
import type { CliCommand } from '../command.js';
import { BUNDLED_POLICY, configPath, parseDuration } from '../options.js';

export const command: CliCommand = {
  name: 'serve',
  summary: 'run the gRPC server (ext_authz, ext_proc, health, admin) and the admin HTTP server',
  help: `Usage: mesh-pep serve [--config FILE] [--grpc-address HOST:PORT] [--admin-address HOST:PORT]
                      [--init-keys | --no-init-keys]

  --config FILE            policy file (env MESH_PEP_CONFIG; default: the bundled config/security_mesh.yaml)
  --grpc-address H:P       gRPC listener (env MESH_PEP_GRPC_ADDRESS; default 0.0.0.0:9001)
  --admin-address H:P      admin HTTP listener: /healthz /readyz /metrics (env MESH_PEP_ADMIN_ADDRESS; default 0.0.0.0:9090)
  --init-keys              create missing key files at start (default only for the bundled development policy)
  --drain-delay DURATION   after SIGTERM, keep answering this long with readiness 503 (default 3s)

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
      },
      strict: true,
    });
    const log = createLogger();
    const configFile = configPath(values.config);
    const initDevKeys = values['no-init-keys'] ? false : (values['init-keys'] ?? configFile === BUNDLED_POLICY);
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
