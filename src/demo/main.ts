import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BUNDLED_POLICY } from '../cli/options.js';
import { verifyAuditChain } from '../audit/verify.js';
import { header, type ExchangeResult } from '../envoy/peer/ext-proc-peer.js';
import { SidecarPeer, type SidecarRequest, type SidecarResult } from '../envoy/peer/sidecar.js';
import { mintPolicyToken } from '../identity/dev-issuer.js';
import { startServer } from '../server/start.js';
import { createLogger } from '../telemetry/logger.js';
import { enclave, executor, lastSeen, MemoryStore, modelService } from './agents.js';

/**
 * `npm run demo`: the bundled policy, a real mesh-pep, and three agents (orchestrator, retriever,
 * analyst) calling each other through a faithful sidecar (ext_authz → ext_proc → callee). Prints one
 * row per hop and where the audit went. Everything runs on 127.0.0.1 in a temp folder.
 */
const ORCH = 'spiffe://cluster.local/ns/agents/sa/orchestrator';
const RETR = 'spiffe://cluster.local/ns/agents/sa/retriever';
const ANAL = 'spiffe://cluster.local/ns/agents/sa/analyst';

interface Row {
  hop: string;
  domain: string;
  decision: string;
  detail: string;
}

function short(list: readonly string[], n = 4): string {
  return list.length <= n ? list.join(', ') : `${list.slice(0, n).join(', ')} +${list.length - n} more`;
}

function describe(r: SidecarResult, calleeSaw?: string): Pick<Row, 'decision' | 'detail'> {
  if (r.kind === 'denied') return { decision: `DENY ${r.status} ${r.reason}`, detail: 'Envoy answers locally; the callee is never reached' };
  const ex: ExchangeResult = r.exchange;
  const who = r.metadata.agent_pseudonym ? `pseudonym ${r.metadata.agent_pseudonym.slice(0, 11)}…` : `agent id ${r.metadata.agent_id}`;
  const sent = ex.upstreamRequest;
  const prot = sent ? header(sent.headers, 'x-mesh-protected') : undefined;
  const parts = [`callee sees ${who}`, `removed: ${short(r.removed)}`];
  if (prot) parts.push(`body → ${prot} (${header(sent!.headers, 'content-type')}, ${sent!.body.length} B)`);
  if (ex.kind === 'local') {
    return {
      decision: `DENY ${ex.response.status} ${header(ex.response.headers, 'x-mesh-reason') ?? ex.localReason}`,
      detail: `Check allowed, then ext_proc stopped the body before the callee (findings audited as counts only)`,
    };
  }
  if (calleeSaw) parts.push(calleeSaw);
  if (ex.response.body.length) parts.push(`caller got ${header(ex.response.headers, 'content-type')}: ${ex.response.body.toString('utf8').slice(0, 60)}`);
  return { decision: `ALLOW ${ex.response.status}`, detail: parts.join('; ') };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-pep-demo-'));
  await mkdir(path.join(dir, 'config'));
  const configFile = path.join(dir, 'config', 'security_mesh.yaml');
  await writeFile(configFile, await readFile(BUNDLED_POLICY, 'utf8'));
  process.stdout.write(`Starting mesh-pep on the bundled policy (state in ${dir}); creating development keys (the FHE keys take a few seconds)…\n`);
  const server = await startServer({ configFile, grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', initDevKeys: true, log: createLogger('silent') });
  const policy = server.runtime.policy();
  const token = (agent: string, role: string, extra: { spiffe?: string; attested?: boolean } = {}) =>
    mintPolicyToken(policy, { agentId: agent, role, ttlMs: 600_000, spiffeId: extra.spiffe, attestation: extra.attested ? [...policy.trustedMeasurements][0] : undefined });
  const orchestrator = await token('orchestrator-1', 'ORCHESTRATOR', { spiffe: ORCH });
  const retriever = await token('retriever-7', 'RETRIEVER', { spiffe: RETR });
  const analyst = await token('analyst-2', 'ANALYST', { spiffe: ANAL, attested: true });

  const sidecar = new SidecarPeer(`127.0.0.1:${server.grpcPort}`);
  const store = new MemoryStore();
  const weights = [0.4, -0.25, 0.1, 0.05];
  const bias = 0.3;
  const features = [1.5, 2.0, -0.5, 3.25];
  const rows: Row[] = [];
  const topology = { 'x-forwarded-for': '10.12.0.7', 'x-sender-ip': '10.12.0.7', 'x-routing-path': 'orch>retr>mem', 'user-agent': 'agent-runtime/1.4', 'x-agent-id': 'spoofed-admin' };
  const hop = async (label: string, req: SidecarRequest, callee: Parameters<SidecarPeer['send']>[1], saw?: string) => {
    lastSeen.clear();
    const r = await sidecar.send(req, callee);
    rows.push({ hop: label, domain: req.domain ?? '(by match)', ...describe(r, saw ? lastSeen.get(saw) : undefined) });
    return r;
  };
  const jsonBody = (v: unknown) => Buffer.from(JSON.stringify(v));

  try {
    await hop('orchestrator → executor: plan step', { method: 'POST', path: '/v1/tasks', host: 'executor.agents.svc', domain: 'coordination', token: orchestrator, principal: ORCH, headers: { 'content-type': 'application/json', ...topology }, body: jsonBody({ task: 'summarise Q3 filings' }) }, executor, 'executor');
    await hop('retriever → memory: write a note', { method: 'PUT', path: '/v1/memory/notes/42', host: 'memory.agents.svc', domain: 'agent_memory', token: retriever, principal: RETR, headers: { 'content-type': 'application/json', ...topology }, body: jsonBody({ note: 'customer paid with card 4111 1111 1111 1111', tags: ['billing'] }) }, store.handle);
    const stored = store.objects.get('/v1/memory/notes/42');
    rows.push({ hop: '  (what the memory store holds)', domain: 'agent_memory', decision: '', detail: stored ? `${stored.contentType}: ${stored.body.toString('utf8').slice(0, 60)}…` : '(nothing)' });
    await hop('retriever → memory: read it back', { method: 'GET', path: '/v1/memory/notes/42', host: 'memory.agents.svc', domain: 'agent_memory', token: retriever, principal: RETR }, store.handle);
    await hop('retriever → models: wrong role', { method: 'POST', path: '/v1/score', host: 'models.agents.svc', domain: 'financial_models', token: retriever, principal: RETR, headers: { 'content-type': 'application/json' }, body: jsonBody({ features }) }, () => ({ status: 200, headers: [[':status', '200']] }));
    await hop('retriever token replayed by analyst pod', { method: 'GET', path: '/v1/memory/notes/42', host: 'memory.agents.svc', domain: 'agent_memory', token: retriever, principal: ANAL }, store.handle);
    await hop('unknown caller, no credential', { method: 'GET', path: '/v1/memory/notes/42', host: 'memory.agents.svc', domain: 'agent_memory', principal: ANAL }, store.handle);
    await hop('analyst → enclave: PII inference', { method: 'POST', path: '/v1/infer', host: 'inference.agents.svc', domain: 'pii_inference', token: analyst, principal: ANAL, headers: { 'content-type': 'application/json' }, body: jsonBody({ income: 84000, debts: 12500 }) }, enclave(policy), 'enclave');
    await hop('analyst → enclave: leaks an SSN', { method: 'POST', path: '/v1/infer', host: 'inference.agents.svc', domain: 'pii_inference', token: analyst, principal: ANAL, headers: { 'content-type': 'application/json' }, body: jsonBody({ income: 84000, note: 'applicant SSN 536-22-1234' }) }, enclave(policy), 'enclave');
    await hop('analyst → models: score features (FHE)', { method: 'POST', path: '/v1/score', host: 'models.agents.svc', domain: 'financial_models', token: analyst, principal: ANAL, headers: { 'content-type': 'application/json' }, body: jsonBody({ features, client: 'acme' }) }, modelService(policy, weights, bias), 'model');
    const expected = weights.reduce((s, w, i) => s + w * features[i]!, bias);
    rows.push({ hop: '  (plaintext score, for comparison)', domain: 'financial_models', decision: '', detail: `w·x + b = ${expected.toFixed(6)}` });
  } finally {
    sidecar.close();
  }

  const widths = { hop: Math.max(...rows.map((r) => r.hop.length)), domain: Math.max(...rows.map((r) => r.domain.length)), decision: Math.max(...rows.map((r) => r.decision.length)) };
  const line = (r: Row) => `${r.hop.padEnd(widths.hop)}  ${r.domain.padEnd(widths.domain)}  ${r.decision.padEnd(widths.decision)}  ${r.detail}`;
  process.stdout.write('\n' + line({ hop: 'hop', domain: 'domain', decision: 'decision', detail: 'what mesh-pep did' }) + '\n');
  process.stdout.write('-'.repeat(widths.hop + widths.domain + widths.decision + 30) + '\n');
  for (const r of rows) process.stdout.write(line(r) + '\n');

  await server.close();
  const chain = await verifyAuditChain(policy.audit.file);
  const count = (await readFile(policy.audit.file, 'utf8')).trim().split('\n').length;
  process.stdout.write(`\nAudit: ${count} hash-chained records in ${policy.audit.file} (chain ${chain.ok ? 'verified' : 'BROKEN'}).\n`);
  if (process.argv.includes('--cleanup')) await rm(dir, { recursive: true, force: true });
  else process.stdout.write(`Verify it yourself: npx mesh-pep audit verify ${policy.audit.file}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
