import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import type { CompiledPolicy, DomainPolicy } from '../config/types.js';
import { CALLER_SPIFFE, envoyCheckRequest } from '../envoy/peer/check-request.js';
import { loadServices } from '../envoy/protos.js';
import { mintDevToken } from '../identity/dev-issuer.js';
import { tierModule } from '../protect/registry.js';
import type { Probe, ProbeSet } from './probe-set.js';
import { bodyExposes, type HeaderOutcome, type ProbeOutcome } from './probe-score.js';

/**
 * Drives a running mesh-pep the way Envoy does: for each probe one ext_authz Check (with the topology
 * headers and a dev credential for the domain), then one ext_proc stream carrying the request headers
 * (with the Check's dynamic metadata as `metadata_context`) and the probe body. What the server sends
 * back decides the outcome:
 *   - an immediate 403 `dlp_blocked` → caught;
 *   - a forwarded body that can be read (plaintext, or protected material the domain's own keys open)
 *     → caught when it changed and the planted value is no longer readable in it;
 *   - otherwise (report mode, or COMPUTATION material only the enclave can open) the audit file, when
 *     given, says what was found for the probe's decision id.
 */
export interface LiveOptions {
  server: string;
  policy: CompiledPolicy;
  domain: DomainPolicy;
  set: ProbeSet;
  /** Audit file to read findings per decision id from (and to re-scan for planted values). */
  auditFile?: string;
  timeoutMs?: number;
  /** Exchanges in flight at once (default 8). */
  concurrency?: number;
}

export interface LiveRun {
  outcomes: ProbeOutcome[];
  headers: HeaderOutcome[] | undefined;
  /** Probes the server did not process (Check denied, stream error, non-DLP deny): reasons and counts. */
  errors: Record<string, number>;
  /** Probes whose outcome could not be observed (no readable body, no audit record). */
  unobserved: number;
}

interface StructValue {
  stringValue?: string;
}
interface CheckView {
  status?: { code?: number };
  ok_response?: { headers_to_remove?: string[] };
  denied_response?: { headers?: Array<{ header?: { key?: string; value?: string } }> };
  dynamic_metadata?: { fields?: Record<string, StructValue> };
}
interface HeaderValueView {
  key?: string;
  raw_value?: Uint8Array;
  value?: string;
}
interface CommonView {
  header_mutation?: { set_headers?: Array<{ header?: HeaderValueView }> };
  body_mutation?: { body?: Uint8Array; clear_body?: boolean };
}
interface ProcessingView {
  response?: string;
  request_headers?: { response?: CommonView };
  request_body?: { response?: CommonView };
  immediate_response?: { status?: { code?: string | number }; headers?: { set_headers?: Array<{ header?: HeaderValueView }> } };
}

type Verdict =
  | { kind: 'blocked' }
  | { kind: 'denied'; reason: string }
  | { kind: 'forwarded'; body: Uint8Array; headers: Map<string, string> };

function headerValue(h: HeaderValueView | undefined): string {
  if (!h) return '';
  return h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('latin1') : (h.value ?? '');
}

function unary<T>(client: grpc.Client, method: string, req: unknown, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (r: unknown, o: object, cb: (e: grpc.ServiceError | null, res: T) => void) => void>)[method].bind(client);
    fn(req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(new Error(`${method}: ${err.details || err.message}`)) : resolve(res)));
  });
}

/** One ext_proc exchange: request headers, then the body; resolves with what the server decided. */
function exchange(client: grpc.Client, probe: Probe, metadata: Record<string, StructValue>, timeoutMs: number): Promise<Verdict> {
  return new Promise((resolve, reject) => {
    const call = (client as unknown as { Process(o: object): grpc.ClientDuplexStream<object, ProcessingView> }).Process({ deadline: Date.now() + timeoutMs });
    let step = 0;
    let settled = false;
    const done = (v: Verdict | Error) => {
      if (settled) return;
      settled = true;
      call.end();
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    call.on('data', (res: ProcessingView) => {
      if (res.immediate_response) {
        const reason = res.immediate_response.headers?.set_headers?.map((s) => s.header).find((h) => h?.key === 'x-mesh-reason');
        const r = headerValue(reason);
        done(r === 'dlp_blocked' ? { kind: 'blocked' } : { kind: 'denied', reason: r || `http ${String(res.immediate_response.status?.code)}` });
        return;
      }
      step++;
      if (step === 1) {
        call.write({ request_body: { body: Buffer.from(probe.body), end_of_stream: true } });
        return;
      }
      const common = res.request_body?.response;
      const headers = new Map<string, string>();
      for (const s of common?.header_mutation?.set_headers ?? []) if (s.header?.key) headers.set(s.header.key, headerValue(s.header));
      const mutation = common?.body_mutation;
      const body = mutation?.clear_body ? new Uint8Array(0) : mutation?.body && mutation.body.length > 0 ? mutation.body : probe.body;
      done({ kind: 'forwarded', body, headers });
    });
    call.on('error', (e: Error) => done(new Error(`Process: ${e.message}`)));
    call.on('end', () => done(new Error('Process: stream ended without a verdict')));
    const headers = [
      [':method', probe.method],
      [':path', probe.path],
      [':authority', 'agents.local'],
      ['content-type', probe.contentType],
      ['content-length', String(probe.body.length)],
      ...(probe.contentEncoding ? [['content-encoding', probe.contentEncoding]] : []),
    ];
    call.write({
      request_headers: { headers: { headers: headers.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) }, end_of_stream: false },
      metadata_context: { filter_metadata: { 'envoy.filters.http.ext_authz': { fields: metadata } } },
    });
  });
}

/** Findings recorded in the audit file, by decision id (entity counts summed over the decision's events). */
async function auditFindings(file: string | undefined): Promise<Map<string, Record<string, number>> | undefined> {
  if (!file) return undefined;
  const text = await readFile(file, 'utf8');
  const out = new Map<string, Record<string, number>>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let rec: { decision_id?: unknown; findings?: unknown };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    if (typeof rec.decision_id !== 'string' || rec.findings === null || typeof rec.findings !== 'object') continue;
    const acc = out.get(rec.decision_id) ?? {};
    for (const [k, v] of Object.entries(rec.findings as Record<string, unknown>)) if (typeof v === 'number') acc[k] = Math.max(acc[k] ?? 0, v);
    out.set(rec.decision_id, acc);
  }
  return out;
}

export async function runLive(o: LiveOptions): Promise<LiveRun> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const { policy, domain, set } = o;
  const role = [...domain.allowedRoles][0];
  if (role === undefined) throw new Error(`domain ${domain.name} allows no role; the probe cannot get past Check`);
  const token = await mintDevToken({
    privateKeyFile: policy.keys.issuerPrivateKeyFile,
    issuer: policy.identity.issuer,
    audience: policy.identity.audiences[0],
    agentId: 'mesh-pep-probe',
    role,
    ttlMs: 10 * 60_000,
    attestation: domain.attestationRequired ? [...policy.trustedMeasurements][0] : undefined,
    spiffeId: CALLER_SPIFFE,
    claims: { role: policy.identity.roleClaim, attestation: policy.identity.attestationClaim, spiffe: policy.identity.spiffeClaim },
  });
  const services = loadServices();
  const creds = grpc.credentials.createInsecure();
  const authz = new services.Authorization(o.server, creds);
  const extProc = new services.ExternalProcessor(o.server, creds);
  const topology = Object.fromEntries(set.headers.map((h) => [h.name, h.value]));
  const errors: Record<string, number> = {};
  const seen: Array<{ probe: Probe; verdict: Verdict | undefined; decisionId: string | undefined }> = new Array(set.probes.length);
  let headers: HeaderOutcome[] | undefined;
  const count = (reason: string) => {
    errors[reason] = (errors[reason] ?? 0) + 1;
  };
  const runOne = async (probe: Probe, index: number): Promise<void> => {
    const check = await unary<CheckView>(authz, 'Check', envoyCheckRequest({
      host: 'agents.local', path: probe.path, method: probe.method, token, domain: domain.name,
      headers: { ...topology, 'content-type': probe.contentType },
    }), timeoutMs);
    if (check.status?.code !== 0) {
      const denied = check.denied_response?.headers?.map((h) => h.header).find((h) => h?.key === 'x-mesh-reason');
      count(`check denied: ${denied?.value || `grpc status ${String(check.status?.code)}`}`);
      seen[index] = { probe, verdict: undefined, decisionId: undefined };
      return;
    }
    if (headers === undefined && domain.metadataMasking) {
      const removed = new Set((check.ok_response?.headers_to_remove ?? []).map((h) => h.toLowerCase()));
      headers = set.headers.map((h) => ({ name: h.name, masked: removed.has(h.name) }));
    }
    const metadata = check.dynamic_metadata?.fields ?? {};
    let verdict: Verdict | undefined;
    try {
      verdict = await exchange(extProc, probe, metadata, timeoutMs);
    } catch (e) {
      count((e as Error).message);
    }
    if (verdict?.kind === 'denied') count(`ext_proc denied: ${verdict.reason}`);
    seen[index] = { probe, verdict, decisionId: metadata.decision_id?.stringValue };
  };
  try {
    // A few exchanges in flight at once, as a mesh would send them; the server's audit group commit
    // then batches their fsyncs instead of paying one per probe.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < set.probes.length) {
        const i = next++;
        await runOne(set.probes[i], i);
      }
    };
    await Promise.all(Array.from({ length: o.concurrency ?? 8 }, worker));
  } finally {
    authz.close();
    extProc.close();
  }

  // Give the server's audit writer its group-commit window before reading the file.
  if (o.auditFile) await new Promise((r) => setTimeout(r, Math.max(50, policy.audit.groupCommitMs * 2)));
  const audit = await auditFindings(o.auditFile);
  const mod = await tierModule(domain.tier);
  const outcomes: ProbeOutcome[] = [];
  let unobserved = 0;
  for (const { probe, verdict, decisionId } of seen) {
    if (verdict === undefined || verdict.kind === 'denied') {
      outcomes.push({ probe, flagged: false, anyFinding: false, leaked: undefined });
      continue;
    }
    const recorded = decisionId !== undefined ? audit?.get(decisionId) : undefined;
    if (verdict.kind === 'blocked') {
      outcomes.push({ probe, flagged: true, anyFinding: true, leaked: false });
      continue;
    }
    const plaintext = await readable(mod, verdict.body, verdict.headers, policy, domain);
    const leaked = plaintext === undefined ? undefined : bodyExposes(plaintext, probe.value);
    // Redaction evidence is the marker itself, not "the body changed": tiers change bodies too.
    const redacted = plaintext !== undefined && !sameBytes(plaintext, probe.body) && bodyExposes(plaintext, '[REDACTED:');
    const foundByAudit = recorded !== undefined && (recorded[probe.entity] ?? 0) > 0;
    const anyByAudit = recorded !== undefined && Object.keys(recorded).length > 0;
    if (plaintext === undefined && recorded === undefined) unobserved++;
    outcomes.push({ probe, flagged: foundByAudit || (redacted && leaked === false), anyFinding: anyByAudit || redacted, leaked });
  }
  return { outcomes, headers, errors, unobserved };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/** The forwarded body in plaintext: as is, or opened with the domain's own keys when the tier protected it. */
async function readable(
  mod: Awaited<ReturnType<typeof tierModule>>,
  body: Uint8Array,
  headers: Map<string, string>,
  policy: CompiledPolicy,
  domain: DomainPolicy,
): Promise<Uint8Array | undefined> {
  if (!headers.has('x-mesh-protected')) return body;
  try {
    return await mod.openForOperator(Buffer.from(body), { policy, domain, keyFiles: [] });
  } catch {
    return undefined; // e.g. COMPUTATION: only the enclave or the parties can open it
  }
}
