/**
 * `npm run demo:envoy [-- --keep]`: the three-agent demo through a real Envoy 1.40 running the shipped
 * envoy/envoy.yaml, a real mesh-pep and a real Jaeger, all on this machine without Docker (the same
 * stack envoy/docker-compose.yaml describes). Each hop is a real HTTP request to Envoy's listener; the
 * table shows what the callee agent really received and what the caller really got back. Every hop
 * carries a W3C traceparent of the demo's own, so the trace ids printed at the end open in Jaeger; the
 * demo waits until Jaeger holds each hop's Envoy and mesh-pep spans before it prints them.
 *
 * Without --keep it stops everything and exits (Jaeger's storage is in memory, so the traces go with
 * it); with --keep it leaves the stack up until Ctrl-C so the Jaeger UI can be opened.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { loadPolicyFile } from '../../src/config/load.js';
import { mintPolicyToken } from '../../src/identity/dev-issuer.js';
import { ensureEnvoy } from '../envoy/binary.js';
import { startTracedStack, type TracedStack } from '../envoy/stack.js';
import { ensureJaeger } from '../jaeger/binary.js';
import { serviceOf } from '../jaeger/process.js';

interface Row {
  hop: string;
  domain: string;
  decision: string;
  detail: string;
  traceId?: string;
}

interface Echo {
  agent?: string;
  received?: { method: string; path: string; headers: Record<string, string>; body: string };
  stored_content_type?: string;
  bytes?: number;
  stored_dot_separated_parts?: number;
}

// Headers an agent runtime or a previous proxy hop typically adds: masking domains strip them.
const TOPOLOGY = { 'x-forwarded-for': '10.12.0.7', 'x-sender-ip': '10.12.0.7', 'x-routing-path': 'orch>retr>mem', 'user-agent': 'agent-runtime/1.4' };
// A client that tries to speak for the mesh: these never survive.
const SPOOFED = { 'x-agent-id': 'spoofed-admin', 'x-mesh-domain': 'agent_memory' };

const short = (list: readonly string[], n = 4) => (list.length <= n ? list.join(', ') : `${list.slice(0, n).join(', ')} +${list.length - n} more`);
const clip = (s: string, n = 60) => (s.length > n ? `${s.slice(0, n)}…` : s);

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const [envoyBin, jaegerBin] = await Promise.all([ensureEnvoy({ log }), ensureJaeger({ log })]);
  process.stdout.write(`Envoy ${envoyBin.version} (${envoyBin.path}), Jaeger ${jaegerBin.version} (${jaegerBin.path})\n`);
  process.stdout.write('Starting Jaeger, mesh-pep (bundled policy; creating development keys, the FHE keys take a few seconds), three agents and Envoy…\n');
  const stack: TracedStack = await startTracedStack({ envoyBinary: envoyBin.path, jaegerBinary: jaegerBin.path });
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await stack.stop();
  };
  try {
    const { policy } = await loadPolicyFile(stack.policyFile);
    const measurement = [...policy.trustedMeasurements][0];
    // No SPIFFE claim: the local listener has no mTLS, so Envoy sends no source principal to bind it to.
    const orchestrator = await mintPolicyToken(policy, { agentId: 'orchestrator-1', role: 'ORCHESTRATOR', ttlMs: 600_000 });
    const retriever = await mintPolicyToken(policy, { agentId: 'retriever-7', role: 'RETRIEVER', ttlMs: 600_000 });
    const analyst = await mintPolicyToken(policy, { agentId: 'analyst-2', role: 'ANALYST', ttlMs: 600_000, attestation: measurement });
    const rows: Row[] = [];

    const hop = async (label: string, domain: string, method: string, route: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}) => {
      const traceId = randomBytes(16).toString('hex');
      const sent: Record<string, string> = { ...headers, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` };
      if (token) sent.authorization = `Bearer ${token}`;
      if (body !== undefined) sent['content-type'] = 'application/json';
      const res = await fetch(`${stack.url}${route}`, { method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      const reason = res.headers.get('x-mesh-reason');
      const row: Row = { hop: label, domain, decision: '', detail: '', traceId };
      if (reason) {
        row.decision = `DENY ${res.status} ${reason}`;
        row.detail = 'Envoy answered locally; the callee was never reached';
      } else {
        row.decision = `ALLOW ${res.status}`;
        let echo: Echo | undefined;
        try {
          echo = (res.headers.get('content-type') ?? '').includes('json') ? (JSON.parse(text) as Echo) : undefined;
        } catch {
          echo = undefined; // not an agent's JSON: shown as the caller got it
        }
        const got = echo?.received;
        const parts: string[] = [];
        if (got) {
          const h = got.headers;
          parts.push(h['x-agent-pseudonym'] ? `callee sees pseudonym ${clip(h['x-agent-pseudonym'], 11)}` : `callee sees agent id ${h['x-agent-id']}`);
          const removed = Object.keys(sent).filter((k) => !(k in h) && k !== 'traceparent');
          if (removed.length) parts.push(`removed: ${short(removed)}`);
          const replaced = Object.keys(SPOOFED).filter((k) => k in sent && h[k] !== sent[k]);
          if (replaced.length) parts.push(`spoofed ${replaced.join(', ')} replaced`);
          if (h['x-mesh-protected']) parts.push(`body → ${h['x-mesh-protected']} (${h['content-type']}, ${Buffer.byteLength(got.body)} B)`);
        } else if (echo?.stored_content_type) {
          parts.push(`the store holds ${echo.stored_content_type}, ${echo.bytes} B, ${echo.stored_dot_separated_parts} dot-separated parts (a compact JWE)`);
        } else {
          parts.push(`caller got ${res.headers.get('content-type')}: ${clip(text.trim())}`);
        }
        const leaked = ['server', 'x-powered-by'].filter((k) => res.headers.has(k));
        if (!leaked.length) parts.push('response without server/x-powered-by');
        row.detail = parts.join('; ');
      }
      rows.push(row);
    };

    const card = 'customer paid with card 4111 1111 1111 1111';
    await hop('orchestrator → coordination: plan step', 'coordination', 'POST', '/coordination/tasks', orchestrator, { task: 'summarise Q3 filings' }, { ...TOPOLOGY, ...SPOOFED });
    await hop('retriever → memory: write a note', 'agent_memory', 'PUT', '/memory/items/42', retriever, { note: card, tags: ['billing'] }, TOPOLOGY);
    await hop('retriever → memory: read it back', 'agent_memory', 'GET', '/memory/items/42', retriever);
    await hop('retriever → models: wrong role', 'financial_models', 'POST', '/models/score', retriever, { features: [1.5, 2] });
    await hop('unknown caller, no credential', 'agent_memory', 'GET', '/memory/items/42', undefined);
    await hop('forged credential', 'agent_memory', 'GET', '/memory/items/42', `${retriever.split('.').slice(0, 2).join('.')}.${'A'.repeat(86)}`);
    await hop('analyst → enclave: PII inference', 'pii_inference', 'POST', '/inference/infer', analyst, { income: 84000, debts: 12500 }, TOPOLOGY);
    await hop('analyst → enclave: leaks an SSN', 'pii_inference', 'POST', '/inference/infer', analyst, { income: 84000, note: 'applicant SSN 536-22-1234' });
    await hop('analyst → models: score features (FHE)', 'financial_models', 'POST', '/models/score', analyst, { features: [1.5, 2.0, -0.5, 3.25], client: 'acme' });

    // Wait until Jaeger holds, for every hop, Envoy's spans and mesh-pep's Check span (spans are batched).
    for (const r of rows) {
      await stack.jaeger.waitForTrace(r.traceId!, (t) =>
        t.spans.some((s) => s.operationName === 'mesh.authz.check') && t.spans.some((s) => serviceOf(t, s) === 'envoy-agents-ingress'),
      );
    }

    const widths = { hop: Math.max(...rows.map((r) => r.hop.length)), domain: Math.max(...rows.map((r) => r.domain.length)), decision: Math.max(...rows.map((r) => r.decision.length)) };
    const line = (r: Row) => `${r.hop.padEnd(widths.hop)}  ${r.domain.padEnd(widths.domain)}  ${r.decision.padEnd(widths.decision)}  ${r.detail}`;
    process.stdout.write('\n' + line({ hop: 'hop (through Envoy)', domain: 'domain', decision: 'decision', detail: 'what the callee and the caller really got' }) + '\n');
    process.stdout.write('-'.repeat(widths.hop + widths.domain + widths.decision + 40) + '\n');
    for (const r of rows) process.stdout.write(line(r) + '\n');

    const auditFile = policy.audit.file;
    const chain = await verifyAuditChain(auditFile);
    const count = (await readFile(auditFile, 'utf8')).trim().split('\n').length;
    process.stdout.write(`\nAudit: ${count} hash-chained records in ${auditFile} (chain ${chain.ok ? 'verified' : 'BROKEN'}; the folder goes when the demo stops).\n`);
    process.stdout.write(`\nJaeger UI: ${stack.jaeger.uiUrl}  (services envoy-agents-ingress and mesh-pep)\n`);
    for (const r of rows) process.stdout.write(`  ${r.hop.padEnd(widths.hop)}  ${stack.jaeger.uiUrl}/trace/${r.traceId}\n`);
    if (!chain.ok) process.exitCode = 1;

    if (!keep) {
      process.stdout.write('\nStopping (Jaeger keeps traces in memory only): run `npm run demo:envoy -- --keep` to keep the stack up and open them.\n');
      return;
    }
    process.stdout.write(`\nEnvoy: ${stack.url}  admin ${stack.envoy.adminUrl}  mesh-pep admin http://127.0.0.1:${stack.pep.adminPort}\nRunning until Ctrl-C.\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
  } finally {
    await shutdown();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`demo:envoy failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
