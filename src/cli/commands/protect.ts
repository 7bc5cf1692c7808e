import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { header } from '../../envoy/peer/ext-proc-peer.js';
import { SidecarPeer } from '../../envoy/peer/sidecar.js';
import { UsageError, type CliCommand } from '../command.js';
import { readStdin, writeStdout } from '../io.js';
import { required } from '../options.js';

export const command: CliCommand = {
  name: 'protect',
  summary: 'send a body through Check and ext_proc as a sidecar would; print what the callee receives',
  help: `Usage: mesh-pep protect [--server HOST:PORT] --domain D --token T [--method PUT] [--path P]
                        [--host H] [--content-type TYPE] [--principal SPIFFE] [FILE]

Plays an inbound sidecar's filter chain (ext_authz Check, then ext_proc with BUFFERED bodies) against a
running mesh-pep for one request whose body is FILE (or stdin), and writes the body the callee would
receive to stdout: a JWE for RETRIEVAL and COMPUTATION, $fhe ciphertexts for FHE, redacted text where
the leak guard redacts. What happened (decision, headers) goes to stderr. Feed the output to
\`mesh-pep open\` to get the plaintext back.
Exit code: 0 forwarded, 3 denied (by Check or ext_proc), 1 when the server cannot be reached.

Example:
  echo '{"note":"hello"}' | mesh-pep protect --domain agent_memory --token "$TOKEN" > note.jwe
  mesh-pep open --domain agent_memory note.jwe`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        server: { type: 'string', default: '127.0.0.1:9001' },
        domain: { type: 'string' },
        token: { type: 'string' },
        method: { type: 'string', default: 'PUT' },
        path: { type: 'string', default: '/v1/objects/1' },
        host: { type: 'string', default: 'agents.local' },
        'content-type': { type: 'string', default: 'application/json' },
        principal: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length > 1) throw new UsageError('give at most one body file');
    const domain = required(values.domain, '--domain');
    const token = required(values.token, '--token');
    const file = positionals[0];
    const body = file === undefined || file === '-' ? await readStdin() : await readFile(file);
    const sidecar = new SidecarPeer(values.server!);
    let received: Buffer | undefined;
    try {
      const r = await sidecar
        .send(
          {
            method: values.method!,
            path: values.path!,
            host: values.host!,
            domain,
            token,
            principal: values.principal ?? '',
            headers: { 'content-type': values['content-type']! },
            body,
          },
          (req) => {
            received = req.body;
            process.stderr.write(`callee received ${header(req.headers, 'content-type')} (${req.body.length} bytes), x-mesh-protected: ${header(req.headers, 'x-mesh-protected') ?? '-'}\n`);
            return { status: 204, headers: [[':status', '204']] };
          },
        )
        .catch((e: Error) => {
          throw new Error(`cannot reach mesh-pep at ${values.server}: ${e.message}`);
        });
      if (r.kind === 'denied') {
        process.stderr.write(`DENY by Check: http=${r.status} reason=${r.reason}\n`);
        return 3;
      }
      if (r.exchange.kind === 'local' || received === undefined) {
        process.stderr.write(`DENY by ext_proc: http=${r.exchange.response.status} reason=${header(r.exchange.response.headers, 'x-mesh-reason') ?? r.exchange.localReason}\n`);
        return 3;
      }
      await writeStdout(received);
      return 0;
    } finally {
      sidecar.close();
    }
  },
};
