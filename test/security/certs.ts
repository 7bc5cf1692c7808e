import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Certificates minted at run time with the `openssl` CLI (P-256 keys: fast to generate): a CA, a server
 * certificate for 127.0.0.1/localhost and a client certificate carrying a SPIFFE URI SAN.
 */
export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  read(file: string): Buffer;
  /** Another client certificate from the same CA with this subjectAltName (e.g. `URI:spiffe://…`). */
  client(base: string, subjectAltName: string): { cert: Buffer; key: Buffer };
  cleanup(): void;
}

function ssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

export function mintPki(name = 'pki'): TestPki {
  const dir = mkdtempSync(path.join(os.tmpdir(), `mesh-pep-${name}-`));
  const key = (f: string) => ssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f]);
  key('ca.key');
  ssl(dir, ['req', '-x509', '-new', '-key', 'ca.key', '-subj', `/CN=mesh-pep test CA ${name}`, '-days', '2', '-out', 'ca.crt',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const leaf = (base: string, cn: string, ext: string) => {
    key(`${base}.key`);
    ssl(dir, ['req', '-new', '-key', `${base}.key`, '-subj', `/CN=${cn}`, '-out', `${base}.csr`]);
    writeFileSync(path.join(dir, `${base}.ext`), ext);
    ssl(dir, ['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${base}.crt`, '-extfile', `${base}.ext`]);
  };
  leaf('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'agent', 'subjectAltName=URI:spiffe://cluster.local/ns/mesh/sa/envoy\nextendedKeyUsage=clientAuth\n');
  const p = (f: string) => path.join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    read: (f) => readFileSync(f),
    client: (base, san) => {
      leaf(base, base, `subjectAltName=${san}\nextendedKeyUsage=clientAuth\n`);
      return { cert: readFileSync(p(`${base}.crt`)), key: readFileSync(p(`${base}.key`)) };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
