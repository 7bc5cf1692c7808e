import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { envoyCheckRequest } from '../../envoy/peer/check-request.js';
import { loadServices } from '../../envoy/protos.js';
import { UsageError, type CliCommand } from '../command.js';
import { required } from '../options.js';
import { readStdin } from '../io.js';

export const command: CliCommand = {
  name: 'check',
  summary: 'send an Envoy-shaped CheckRequest and print the decision',
  help: `Usage: mesh-pep check [--server HOST:PORT] (--domain D | --host H) --token T
                      [--method M] [--path P] [--header name=value ...] [--principal SPIFFE]
                      [--body JSON] [--json] [--explain]

Sends the CheckRequest Envoy's ext_authz filter would send (pseudo-headers, authorization header,
source principal, context_extensions.domain) and prints the decision readably.
  --server H:P       mesh-pep gRPC address (default 127.0.0.1:9001)
  --domain D         context_extensions.domain, as an Envoy route would set it
  --host H           :authority (default agents.local); selects the domain by match when --domain is absent
  --token T          bearer credential ("-" reads it from stdin); omit with --no-token to test the deny
  --principal P      source.principal (the caller's SPIFFE id from mTLS)
  --body TEXT        the request body, as Envoy sends it with with_request_body (MCP/A2A domains)
  --json             print the raw CheckResponse as JSON
  --explain          ask the Admin/Explain API and print every step of the decision
Exit code: 0 allow, 3 deny, 1 when the server cannot be reached.`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        server: { type: 'string', default: '127.0.0.1:9001' },
        domain: { type: 'string' },
        host: { type: 'string', default: 'agents.local' },
        token: { type: 'string' },
        'no-token': { type: 'boolean', default: false },
        method: { type: 'string', default: 'POST' },
        path: { type: 'string', default: '/' },
        header: { type: 'string', multiple: true, default: [] },
        principal: { type: 'string' },
        body: { type: 'string' },
        json: { type: 'boolean', default: false },
        explain: { type: 'boolean', default: false },
      },
      strict: true,
    });
    let token = values['no-token'] ? undefined : required(values.token, '--token (or --no-token)');
    if (token === '-') token = (await readStdin()).toString('utf8').trim();
    const extra: Record<string, string> = {};
    for (const h of values.header!) {
      const i = h.indexOf('=');
      if (i <= 0) throw new UsageError(`--header "${h}" must be name=value`);
      extra[h.slice(0, i).toLowerCase()] = h.slice(i + 1);
    }
    const request = envoyCheckRequest({
      host: values.host,
      path: values.path,
      method: values.method,
      token,
      headers: extra,
      principal: values.principal ?? '',
      domain: values.domain,
      ...(values.body !== undefined ? { body: values.body } : {}),
    });
    const services = loadServices();
    const creds = grpc.credentials.createInsecure();
    if (values.explain) {
      const client = new services.Admin(values.server!, creds);
      const res = await unary(client, 'Explain', { check: request }).finally(() => client.close());
      if (values.json) process.stdout.write(JSON.stringify(res, null, 2) + '\n');
      else printExplain(res as ExplainView);
      return (res as ExplainView).decision === 'allow' ? 0 : 3;
    }
    const client = new services.Authorization(values.server!, creds);
    const res = (await unary(client, 'Check', request).finally(() => client.close())) as CheckView;
    if (values.json) process.stdout.write(JSON.stringify(res, null, 2) + '\n');
    else printCheck(res);
    return res.status?.code === 0 ? 0 : 3;
  },
};

interface HeaderOpt {
  header?: { key?: string; value?: string };
}
interface CheckView {
  status?: { code?: number; message?: string };
  ok_response?: { headers?: HeaderOpt[]; headers_to_remove?: string[] };
  denied_response?: { status?: { code?: string | number }; headers?: HeaderOpt[]; body?: string };
  dynamic_metadata?: { fields?: Record<string, { stringValue?: string }> };
}
interface ExplainView {
  decision: string;
  reason: string;
  domain: string;
  tier: string;
  role: string;
  agent: string;
  steps: Array<{ phase: string; outcome: string; detail: string }>;
}

function printCheck(res: CheckView): void {
  const out: string[] = [];
  if (res.status?.code === 0) {
    const meta = Object.fromEntries(Object.entries(res.dynamic_metadata?.fields ?? {}).map(([k, v]) => [k, v.stringValue ?? '']));
    out.push(`ALLOW  domain=${meta.domain} tier=${meta.tier} role=${meta.role}  decision=${meta.decision_id}`);
    for (const h of res.ok_response?.headers ?? []) out.push(`  set     ${h.header?.key}: ${h.header?.value}`);
    const removed = res.ok_response?.headers_to_remove ?? [];
    out.push(`  remove  ${removed.length ? removed.join(', ') : '(nothing)'}`);
    out.push(`  metadata[envoy.filters.http.ext_authz]  ${Object.entries(meta).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  } else {
    const reason = res.denied_response?.headers?.find((h) => h.header?.key === 'x-mesh-reason')?.header?.value ?? res.status?.message;
    out.push(`DENY   http=${httpCode(res.denied_response?.status?.code)} grpc=${res.status?.code} reason=${reason}`);
    if (res.denied_response?.body) out.push(`  body    ${res.denied_response.body}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

const HTTP_NAMES: Record<string, number> = { OK: 200, Unauthorized: 401, Forbidden: 403, ServiceUnavailable: 503, BadRequest: 400 };
function httpCode(c: string | number | undefined): string {
  return typeof c === 'string' ? String(HTTP_NAMES[c] ?? c) : String(c ?? '?');
}

function printExplain(res: ExplainView): void {
  const out = [`${res.decision.toUpperCase()}  reason=${res.reason} domain=${res.domain || '-'} tier=${res.tier || '-'} role=${res.role || '-'} agent=${res.agent || '-'}`];
  for (const s of res.steps) out.push(`  ${s.phase.padEnd(10)} ${s.outcome.padEnd(5)} ${s.detail}`);
  process.stdout.write(out.join('\n') + '\n');
}

function unary(client: grpc.Client, method: string, req: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!.bind(client);
    fn(req, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: unknown) => {
      if (err) reject(new Error(`${method} failed: ${err.details || err.message}`));
      else resolve(res);
    });
  });
}

