import { readFile } from 'node:fs/promises';
import type { CompiledPolicy, DomainPolicy } from '../config/types.js';
import { CALLER_SPIFFE } from '../envoy/peer/check-request.js';
import { header, type HttpResponse } from '../envoy/peer/ext-proc-peer.js';
import { SidecarPeer } from '../envoy/peer/sidecar.js';
import { mintDevToken } from '../identity/dev-issuer.js';
import { tierModule } from '../protect/registry.js';
import type { Probe, ProbeSet } from './probe-set.js';
import { bodyExposes, type HeaderOutcome, type ProbeOutcome } from './probe-score.js';

/**
 * Drives a running mesh-pep the way an Istio sidecar does (`SidecarPeer`: ext_authz Check, then an
 * ext_proc stream with Check's dynamic metadata, then the callee): one exchange per probe, with a dev
 * credential for the domain and the topology headers. What comes out decides the outcome:
 *   - Envoy answers locally with 403 `dlp_blocked` → caught;
 *   - the callee receives a body that can be read (plaintext, or protected material the domain's own
 *     keys open) → caught when it carries a redaction marker and the planted value is no longer
 *     readable in it;
 *   - otherwise (report mode, or COMPUTATION material only the enclave can open) the audit file, when
 *     given, says what was found for the probe's decision id.
 */
export interface LiveOptions {
  server: string;
  policy: CompiledPolicy;
  domain: DomainPolicy;
  set: ProbeSet;
  /** Audit file to read findings per decision id from. */
  auditFile?: string;
  /** Exchanges in flight at once (default 8). */
  concurrency?: number;
  /**
   * `request` (default): the probe body is what the caller sends; `response`: the callee answers a
   * benign request with the probe body, which the leak guard scans after unprotection.
   */
  direction?: 'request' | 'response';
}

export interface LiveRun {
  outcomes: ProbeOutcome[];
  headers: HeaderOutcome[] | undefined;
  /** Probes the server did not process (Check denied, stream error, non-DLP deny): reasons and counts. */
  errors: Record<string, number>;
  /** Probes whose outcome could not be observed (no readable body, no audit record). */
  unobserved: number;
}

type Verdict =
  | { kind: 'blocked' }
  | { kind: 'denied'; reason: string }
  | { kind: 'forwarded'; body: Uint8Array; protectedBy: string | undefined };

/** The callee in request mode: acknowledges whatever it received. */
const ACK: HttpResponse = { status: 200, headers: [['content-type', 'application/json']], body: Buffer.from('{"ok":true}') };
const READ_REQUEST = Buffer.from('{"op":"read","limit":10}');

function probeHeaders(probe: Probe): Record<string, string> {
  return { 'content-type': probe.contentType, ...(probe.contentEncoding ? { 'content-encoding': probe.contentEncoding } : {}) };
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
  const sidecar = new SidecarPeer(o.server);
  const inResponse = o.direction === 'response';
  const topology = Object.fromEntries(set.headers.map((h) => [h.name, h.value]));
  const errors: Record<string, number> = {};
  const count = (reason: string) => {
    errors[reason] = (errors[reason] ?? 0) + 1;
  };
  const seen: Array<{ probe: Probe; verdict: Verdict | undefined; decisionId: string | undefined }> = new Array(set.probes.length);
  let headers: HeaderOutcome[] | undefined;

  const runOne = async (probe: Probe, index: number): Promise<void> => {
    let verdict: Verdict | undefined;
    let decisionId: string | undefined;
    try {
      const r = await sidecar.send(
        {
          method: probe.method,
          path: probe.path,
          host: 'agents.local',
          headers: { ...topology, ...(inResponse ? { 'content-type': 'application/json' } : probeHeaders(probe)) },
          body: inResponse ? READ_REQUEST : Buffer.from(probe.body),
          token,
          principal: CALLER_SPIFFE,
          domain: domain.name,
        },
        () => (inResponse ? { status: 200, headers: Object.entries(probeHeaders(probe)), body: Buffer.from(probe.body) } : ACK),
      );
      if (r.kind === 'denied') {
        count(`check denied: ${r.reason}`);
      } else {
        decisionId = r.metadata.decision_id;
        if (headers === undefined && domain.metadataMasking) {
          const removed = new Set(r.removed.map((h) => h.toLowerCase()));
          headers = set.headers.map((h) => ({ name: h.name, masked: removed.has(h.name) }));
        }
        const ex = r.exchange;
        if (ex.kind === 'local' || !ex.upstreamRequest) {
          const reason = header(ex.response.headers, 'x-mesh-reason') ?? ex.localReason ?? `http ${ex.response.status}`;
          verdict = reason === 'dlp_blocked' ? { kind: 'blocked' } : { kind: 'denied', reason };
          if (verdict.kind === 'denied') count(`ext_proc denied: ${reason}`);
        } else if (inResponse) {
          // What the calling agent receives: already unprotected by the server.
          verdict = { kind: 'forwarded', body: ex.response.body, protectedBy: header(ex.response.headers, 'x-mesh-protected') };
        } else {
          verdict = { kind: 'forwarded', body: ex.upstreamRequest.body, protectedBy: header(ex.upstreamRequest.headers, 'x-mesh-protected') };
        }
      }
    } catch (e) {
      count((e as Error).message);
    }
    seen[index] = { probe, verdict, decisionId };
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
    sidecar.close();
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
    const plaintext = await readable(mod, verdict.body, verdict.protectedBy, policy, domain);
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
  protectedBy: string | undefined,
  policy: CompiledPolicy,
  domain: DomainPolicy,
): Promise<Uint8Array | undefined> {
  if (protectedBy === undefined) return body;
  try {
    return await mod.openForOperator(Buffer.from(body), { policy, domain, keyFiles: [] });
  } catch {
    return undefined; // e.g. COMPUTATION: only the enclave or the parties can open it
  }
}
