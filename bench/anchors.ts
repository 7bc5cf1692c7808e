import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * The Go anchors of the bench: servers operators compare mesh-pep with, built from pinned sources
 * through the Go module proxy (bench/anchors/go-authz/go.mod and go.sum pin every module) into the
 * git-ignored .cache/bin. See bench/anchors/go-authz/main.go for what the minimal grpc-go server does.
 */
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const GO_AUTHZ_SRC = path.join(ROOT, 'bench/anchors/go-authz');
const GO_AUTHZ_BIN = path.join(ROOT, '.cache/bin/go-authz-anchor');

export interface AnchorProc {
  child: ChildProcess;
  port: number;
}

export async function buildGoAnchor(log: (s: string) => void): Promise<string> {
  log('building the grpc-go ext_authz anchor (go build, pinned by bench/anchors/go-authz/go.sum)');
  try {
    await promisify(execFile)('go', ['build', '-trimpath', '-o', GO_AUTHZ_BIN, '.'], { cwd: GO_AUTHZ_SRC, timeout: 600_000, env: { ...process.env, GOFLAGS: '-mod=readonly' } });
  } catch (e) {
    const err = e as Error & { stderr?: string; code?: string };
    if (err.code === 'ENOENT') throw new Error('the Go anchor needs Go on PATH (https://go.dev/dl or apt-get install golang)');
    throw new Error(`go build of the Go anchor failed: ${(err.stderr || err.message).slice(-2000)}`);
  }
  return GO_AUTHZ_BIN;
}

/** Starts the Go anchor with the bench policy's issuer, audience and domains (the same roles and masking). */
export async function startGoAnchor(bin: string, o: { port: number; jwksFile: string; issuer: string; audience: string; domains: string[] }): Promise<AnchorProc> {
  const args = ['-addr', `127.0.0.1:${o.port}`, '-jwks', o.jwksFile, '-issuer', o.issuer, '-audience', o.audience];
  for (const d of o.domains) args.push('-domain', d);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve((JSON.parse(d.toString()) as { port: number }).port));
    child.once('exit', (c) => reject(new Error(`Go anchor exited (${c})`)));
  });
  return { child, port };
}
