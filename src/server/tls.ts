import { readFile, stat } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { ServerTlsSettings } from '../config/types.js';
import type { Logger } from '../telemetry/logger.js';

type MinVersion = '1.2' | '1.3';
const NODE_VERSION = { '1.2': 'TLSv1.2', '1.3': 'TLSv1.3' } as const;

export interface ServerTlsOptions {
  /** Read on every (re)load, so a policy reload that raises `tls_min_version` applies to new handshakes. */
  minVersion: () => MinVersion;
  log?: Logger;
  /** How often the certificate files are checked for changes; default 1000 ms. */
  pollMs?: number;
}

async function readContext(files: ServerTlsSettings, minVersion: MinVersion): Promise<SecureContextOptions> {
  const [cert, key, ca] = await Promise.all([
    readFile(files.certFile),
    readFile(files.keyFile),
    files.clientCaFile ? readFile(files.clientCaFile) : Promise.resolve(undefined),
  ]);
  const options: SecureContextOptions = { cert, key, ...(ca ? { ca } : {}), minVersion: NODE_VERSION[minVersion] };
  // Fails here, not at the first handshake, when the key does not match the certificate or a PEM is bad.
  createSecureContext(options);
  return options;
}

async function stampOf(files: ServerTlsSettings): Promise<string> {
  const paths = [files.certFile, files.keyFile, files.clientCaFile].filter((p): p is string => p !== undefined);
  const parts = await Promise.all(paths.map(async (p) => stat(p).then((s) => `${s.ino}:${s.size}:${s.mtimeMs}`, () => 'missing')));
  return parts.join('|');
}

/**
 * TLS (and, with a client CA, mTLS) credentials for the gRPC listener, reloaded when the files change.
 *
 * grpc-js's `ServerCredentials.createSsl` cannot set a minimum TLS version, and grpc-js 1.14 has no
 * secure-context factory, but its `ServerCredentials` base class takes the `http2.createSecureServer`
 * options plus the secure-context options, and pushes later context updates to every listener with
 * `setSecureContext`. That is all this needs: `minVersion` from the policy's `tls_min_version`, client
 * certificates required and verified when `client_ca_file` is set, and hot reload of rotated files
 * (cert-manager, Kubernetes secrets). A reload that fails keeps the last good certificates.
 */
export class ReloadableServerCredentials extends grpc.ServerCredentials {
  private timer: NodeJS.Timeout | undefined;
  private stamp = '';
  private version: MinVersion;
  private reloading: Promise<boolean> | undefined;

  private constructor(
    private readonly files: ServerTlsSettings,
    private readonly opts: ServerTlsOptions,
    initial: SecureContextOptions,
    version: MinVersion,
  ) {
    const mtls = files.clientCaFile !== undefined;
    super({ minVersion: NODE_VERSION[version], requestCert: mtls, rejectUnauthorized: mtls }, initial);
    this.version = version;
  }

  static async create(files: ServerTlsSettings, opts: ServerTlsOptions): Promise<ReloadableServerCredentials> {
    const version = opts.minVersion();
    const stamp = await stampOf(files);
    let initial: SecureContextOptions;
    try {
      initial = await readContext(files, version);
    } catch (e) {
      throw new Error(`server TLS: cannot load certificate files (${(e as Error).message})`);
    }
    const creds = new ReloadableServerCredentials(files, opts, initial, version);
    creds.stamp = stamp;
    creds.timer = setInterval(() => void creds.refresh(), opts.pollMs ?? 1000);
    creds.timer.unref();
    return creds;
  }

  get mutualTls(): boolean {
    return this.files.clientCaFile !== undefined;
  }

  /** Re-reads the files if they (or the minimum version) changed; resolves true when a new context is live. */
  refresh(): Promise<boolean> {
    this.reloading ??= this.doRefresh().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async doRefresh(): Promise<boolean> {
    const stamp = await stampOf(this.files);
    const version = this.opts.minVersion();
    if (stamp === this.stamp && version === this.version) return false;
    this.stamp = stamp;
    try {
      const next = await readContext(this.files, version);
      this.version = version;
      this.updateSecureContextOptions(next);
      this.opts.log?.info({ min_version: NODE_VERSION[version], mtls: this.mutualTls }, 'server TLS certificates reloaded');
      return true;
    } catch (e) {
      this.opts.log?.error({ err: { message: (e as Error).message } }, 'server TLS reload failed; the last good certificates keep serving');
      return false;
    }
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
