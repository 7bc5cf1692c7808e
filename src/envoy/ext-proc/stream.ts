import { shouldAudit } from '../../audit/level.js';
import type { AuditEvent } from '../../audit/record.js';
import type { DomainPolicy } from '../../config/types.js';
import type { ReasonCode } from '../../policy/reasons.js';
import { processBody, type BodyVerdict, type PayloadDigest, type PayloadScan } from '../../protect/pipeline.js';
import { tierModule } from '../../protect/registry.js';
import { protectedRequestRepresentation } from '../../protect/representation.js';
import { CHECK_TO_EXTPROC_HEADERS } from '../../policy/binding.js';
import type { ServerContext } from '../../server/context.js';
import { rpcRequestStep, rpcResponseStep, type RpcExchange } from './rpc-step.js';
import { recordKind, RecordOverflow, RecordSplitter } from '../../dlp/stream-records.js';
import { BodyBuffer, BodyTally } from './body-buffer.js';
import { resolveFlow, type Flow } from './flow.js';
import {
  NO_HEADER_CHANGES,
  ProtocolViolation,
  type BodyChange,
  type BodyPhase,
  type HeaderChanges,
  type HeadersPhase,
  type Inbound,
  type InboundMessage,
  type Outbound,
  type Phase,
  type TrailersPhase,
} from './messages.js';
import type { BodyStage, Established, StreamState } from './state.js';

export interface StreamDeps {
  ctx: ServerContext;
  /** The leak-guard step for a domain, when it has one (wired by the server). */
  scanFor?: (domain: DomainPolicy) => PayloadScan | undefined;
}

/** What the last handled message decided, for the phase's span attributes. */
export interface PhaseNote {
  domain: string | undefined;
  tier: string | undefined;
  role: string | undefined;
  outcome: Outcome | 'continue';
  reason: ReasonCode | 'ok';
  /** Request headers of the exchange (a trace-context carrier when gRPC metadata has none). */
  requestHeaders: ReadonlyMap<string, string> | undefined;
  /** JSON-RPC method(s) and tool(s) of an MCP/A2A body (span attributes). */
  rpc?: { summary: RpcExchange['summary']; protocol: 'mcp' | 'a2a' };
  /** What a leak-guard refusal was about, `ENTITY@layers` (span attribute `mesh.dlp.findings`). */
  dlpFindings?: readonly string[];
}

type Outcome = 'transform' | 'pass' | 'deny' | 'observe';

type Active = Extract<StreamState, { at: 'request' | 'response' }>;

const direction = (phase: Phase): 'request' | 'response' => (phase.startsWith('request') ? 'request' : 'response');

/**
 * One ext_proc stream as an explicit state machine (`state.ts`). `handle` takes one decoded
 * ProcessingRequest and returns the one answer Envoy expects for it (or none in observability mode),
 * throwing `ProtocolViolation` for messages that do not fit the state.
 */
export class ExtProcStream {
  private state: StreamState = { at: 'start' };
  /** The exchange's request headers once seen (trace-context carrier for later phases). */
  requestHeaders: ReadonlyMap<string, string> | undefined;
  /** Trace id of the exchange from the gRPC metadata (wins over the request headers' for the audit). */
  traceId: string | undefined;
  /** Set by every `handle` that returns normally. */
  note: PhaseNote | undefined;
  /** What the request body called (MCP/A2A domains), for the answer's filter, the audit and spans. */
  private rpc: RpcExchange | undefined;
  private responseStatus: string | undefined;

  constructor(private readonly deps: StreamDeps) {}

  get finished(): boolean {
    return this.state.at === 'finished';
  }

  /** Cancel or error: drop buffered plaintext at once (and give its bytes back to the budget). */
  abort(): void {
    this.releaseBody();
    this.state = { at: 'finished' };
  }

  /** The body being received or protected, if any: its bytes count against the process's budget. */
  private holding: BodyBuffer | undefined;

  private releaseBody(): void {
    this.holding?.release();
    this.holding = undefined;
  }

  async handle(msg: InboundMessage): Promise<Outbound | undefined> {
    if (msg.message.phase === 'request_headers' && this.state.at === 'start') this.requestHeaders = msg.message.headers;
    const flow = 'flow' in this.state ? this.state.flow : undefined;
    this.note = undefined;
    const out = await this.dispatch(msg);
    const after = 'flow' in this.state ? this.state.flow : flow;
    this.note ??= {
      domain: after?.domain.name,
      tier: after?.domain.tier,
      role: after?.role ?? undefined,
      outcome: 'continue',
      reason: 'ok',
      requestHeaders: this.requestHeaders,
      ...(this.rpc ? { rpc: { summary: this.rpc.summary, protocol: this.rpc.protocol } } : {}),
    };
    return out;
  }

  private async dispatch(msg: InboundMessage): Promise<Outbound | undefined> {
    const m = msg.message;
    const s = this.state;
    switch (s.at) {
      case 'finished':
        return undefined;
      case 'local_reply':
        if (m.phase === 'response_body') return msg.observability ? undefined : { type: 'body', phase: m.phase, body: { kind: 'keep' }, headers: NO_HEADER_CHANGES };
        if (m.phase === 'response_trailers') return msg.observability ? undefined : { type: 'trailers', phase: m.phase };
        throw new ProtocolViolation(`${m.phase} arrived during a local reply`);
      case 'start':
        if (m.type === 'headers' && isLocalReply(m, msg)) {
          this.state = { at: 'local_reply' };
          this.deps.ctx.metrics.extprocOutcomes.inc({ domain: '', tier: '', phase: m.phase, outcome: 'pass' });
          return msg.observability ? undefined : { type: 'headers', phase: m.phase, headers: NO_HEADER_CHANGES };
        }
        if (m.type === 'headers') return this.open(m, msg);
        throw new ProtocolViolation(`${m.phase} arrived before any headers`);
      case 'request':
        if (m.phase === 'request_headers') throw new ProtocolViolation('request_headers arrived twice');
        if (m.type === 'headers') return this.openResponse(s, m, msg);
        if (m.phase === 'response_body' || m.phase === 'response_trailers') throw new ProtocolViolation(`${m.phase} arrived before response_headers`);
        return m.type === 'body' ? this.body(s, m) : this.trailers(s, m.phase);
      case 'response':
        if (m.type === 'headers') throw new ProtocolViolation(`${m.phase} arrived after response_headers`);
        if (m.phase === 'request_body') throw new ProtocolViolation('request_body arrived after response_headers');
        // Request trailers may trail an early response; they carry nothing mesh-pep changes.
        if (m.phase === 'request_trailers') return s.observe ? undefined : { type: 'trailers', phase: m.phase };
        return m.type === 'body' ? this.body(s, m) : this.trailers(s, m.phase);
    }
  }

  // --- headers ---------------------------------------------------------------------------------

  private async open(m: Extract<Inbound, { type: 'headers' }>, msg: InboundMessage): Promise<Outbound | undefined> {
    const { ctx } = this.deps;
    // Response headers first means Envoy skips request headers: only the metadata can name the domain
    // (a response header never can: it comes from the callee).
    const requestHeaders = m.phase === 'request_headers' ? m.headers : undefined;
    const flow = resolveFlow(ctx.policy(), ctx.pseudonyms, msg.authz, requestHeaders, msg.principal);
    if (flow && this.traceId) flow.traceId = this.traceId;
    if (!flow) return this.refuse(undefined, m.phase, 'no_policy', msg.observability, undefined);
    let module;
    try {
      module = await tierModule(flow.domain.tier);
    } catch (e) {
      ctx.log.error({ err: { message: (e as Error).message }, domain: flow.domain.name }, 'tier module failed to load');
      return this.refuse(flow, m.phase, 'internal_error', msg.observability, undefined);
    }
    const est: Established = { flow, module, observe: msg.observability };
    if (m.phase === 'request_headers') {
      this.state = { ...est, at: 'request', contentType: m.headers.get('content-type'), contentEncoding: m.headers.get('content-encoding'), body: m.endOfStream ? { stage: 'absent' } : { stage: 'expected' } };
      // Check's helper headers (the binding MAC) end here: real Envoy forwards every request header to the callee.
      const remove = CHECK_TO_EXTPROC_HEADERS.filter((h) => m.headers.has(h));
      if (m.endOfStream) return this.answer(est, { type: 'headers', phase: m.phase, headers: remove.length ? { set: [], remove } : NO_HEADER_CHANGES });
      // A body follows and will be replaced. In STREAMED and FULL_DUPLEX_STREAMED modes these headers
      // go on before the body, and body answers cannot change them: label the protected body now and
      // drop the plaintext's length (the body answer sets both again, exactly, where Envoy honours it).
      const rep = protectedRequestRepresentation(flow.domain);
      const set: Array<readonly [string, string]> = [['content-type', rep.contentType], ...Object.entries(rep.headers)];
      // The protected body is never content-coded: a declared coding is undone before scanning (pipeline.ts).
      const coding = m.headers.has('content-encoding') ? ['content-encoding'] : [];
      return this.answer(est, { type: 'headers', phase: m.phase, headers: { set, remove: [...remove, 'content-length', ...coding] } });
    }
    return this.enterResponse(est, m);
  }

  private async openResponse(s: Extract<StreamState, { at: 'request' }>, m: Extract<Inbound, { type: 'headers' }>, msg: InboundMessage): Promise<Outbound | undefined> {
    if (s.body.stage === 'expected' && !s.observe) {
      // The request announced a body that never reached mesh-pep: the filter's request_body_mode is
      // not BUFFERED/STREAMED, so the callee got it unprotected. Refuse the response and say why loudly.
      this.deps.ctx.log.error(
        { domain: s.flow.domain.name, decision_id: s.flow.decisionId },
        'request body was never sent to ext_proc: set processing_mode.request_body_mode to BUFFERED',
      );
      return this.refuse(s.flow, m.phase, 'internal_error', msg.observability, undefined);
    }
    return this.enterResponse(s, m);
  }

  private enterResponse(est: Established, m: Extract<Inbound, { type: 'headers' }>): Outbound | undefined {
    const { domain } = est.flow;
    // The compiled list is the topology set in masking domains plus per-domain extras (empty otherwise).
    const remove = domain.maskResponseHeaders.filter((h) => m.headers.has(h));
    this.responseStatus = m.headers.get(':status');
    this.state = {
      flow: est.flow,
      module: est.module,
      observe: est.observe,
      at: 'response',
      contentType: m.headers.get('content-type'),
      contentEncoding: m.headers.get('content-encoding'),
      body: m.endOfStream ? { stage: 'absent' } : { stage: 'expected' },
    };
    return this.answer(est, { type: 'headers', phase: 'response_headers' satisfies HeadersPhase, headers: { set: [], remove } });
  }

  // --- bodies ----------------------------------------------------------------------------------

  private async body(s: Active, m: Extract<Inbound, { type: 'body' }>): Promise<Outbound | undefined> {
    const stage = s.body;
    if (stage.stage === 'absent' || stage.stage === 'complete') {
      throw new ProtocolViolation(`${m.phase} arrived after the ${direction(m.phase)} ended`);
    }
    if (s.observe) return this.observeBody(s, stage, m);

    if (stage.stage === 'streaming') return this.streamRecords(s, stage, m);
    if (stage.stage === 'expected' && !m.endOfStream) {
      const streaming = this.recordStream(s);
      if (streaming) return this.streamRecords(s, streaming, m);
    }

    let receiving: Extract<BodyStage, { stage: 'receiving' }>;
    if (stage.stage === 'receiving') receiving = stage;
    else if (stage.stage === 'expected') {
      receiving = { stage: 'receiving', buffer: new BodyBuffer(s.flow.domain.maxBodyBytes, this.deps.ctx.bodyBudget), chunks: 0 };
      this.holding = receiving.buffer;
    } else throw new ProtocolViolation(`${m.phase} mixes observability and processing`);

    receiving.chunks++;
    const added = receiving.buffer.add(m.body);
    // Over the process-wide budget the PEP sheds (503 overloaded), as it does beyond its stream limit.
    if (added !== 'ok') return this.refuse(s.flow, m.phase, added === 'too_large' ? 'payload_too_large' : 'overloaded', false, undefined);
    if (!m.endOfStream) {
      // A STREAMED chunk (or a BUFFERED body that trailers will follow): held here, and cleared from
      // Envoy's copy so no plaintext chunk reaches the other side before the whole body is protected.
      s.body = receiving;
      return { type: 'body', phase: m.phase, body: { kind: 'clear' }, headers: NO_HEADER_CHANGES };
    }
    s.body = { stage: 'complete' };
    try {
      return await this.transform(s, m.phase, receiving.buffer.take(), receiving.chunks > 1);
    } finally {
      this.releaseBody();
    }
  }

  /**
   * A response streamed as records (SSE events, NDJSON lines) in a leak-guard domain, without a content
   * coding: scanned record by record, so an agent's event stream is not held until it ends. Anything
   * else (request bodies, which every tier seals whole; protected responses) is buffered.
   */
  private recordStream(s: Active): Extract<BodyStage, { stage: 'streaming' }> | undefined {
    // An MCP/A2A domain filters whole answers (tools/list inside SSE events), so its responses are buffered.
    if (s.at !== 'response' || s.contentEncoding || s.flow.domain.protocol) return undefined;
    const kind = recordKind(s.contentType);
    const scan = kind ? this.deps.scanFor?.(s.flow.domain) : undefined;
    if (!kind || !scan) return undefined;
    return { stage: 'streaming', records: new RecordSplitter(kind, Math.min(s.flow.domain.maxBodyBytes, 1024 * 1024)), tally: new BodyTally(), findings: {}, scan, redacted: false };
  }

  private async streamRecords(s: Active, stage: Extract<BodyStage, { stage: 'streaming' }>, m: Extract<Inbound, { type: 'body' }>): Promise<Outbound | undefined> {
    const { flow } = s;
    s.body = stage;
    stage.tally.add(m.body);
    let ready: Buffer;
    try {
      ready = stage.records.push(m.body);
    } catch (e) {
      if (e instanceof RecordOverflow) return this.refuse(flow, m.phase, 'payload_too_large', false, undefined, stage.findings);
      throw e;
    }
    if (m.endOfStream) ready = ready.length ? Buffer.concat([ready, stage.records.end()]) : stage.records.end();
    let out: Uint8Array = ready;
    if (ready.length) {
      const ctx = { policy: flow.policy, domain: flow.domain, contentType: s.contentType, direction: 'response' as const };
      let r;
      try {
        r = await stage.scan(ready, ctx);
      } catch (e) {
        this.deps.ctx.log.error({ err: { message: (e as Error).message }, domain: flow.domain.name, decision_id: flow.decisionId, phase: m.phase }, 'stream scan failed');
        return this.refuse(flow, m.phase, 'internal_error', false, undefined);
      }
      for (const [entity, n] of Object.entries(r.findings)) {
        stage.findings[entity] = (stage.findings[entity] ?? 0) + n;
        this.deps.ctx.metrics.dlpFindings.inc({ domain: flow.domain.name, entity, action: flow.domain.dlp?.action ?? 'report' }, n);
      }
      if (r.action === 'block') {
        this.deps.ctx.log.warn({ domain: flow.domain.name, decision_id: flow.decisionId, phase: m.phase, reason: 'dlp_blocked' }, 'stream refused');
        return this.refuse(flow, m.phase, 'dlp_blocked', false, undefined, stage.findings, r.layers);
      }
      if (r.action === 'redact') {
        out = r.body;
        stage.redacted = true;
      }
    }
    if (m.endOfStream) {
      s.body = { stage: 'complete' };
      const outcome: Outcome = stage.redacted ? 'transform' : 'pass';
      const audited = await this.audit(flow, m.phase, outcome, 'ok', stage.tally.digest(), stage.findings);
      if (!audited) return this.refuse(flow, m.phase, 'audit_unavailable', false, undefined);
      this.count(flow, m.phase, outcome);
    }
    // Each chunk's answer carries exactly the records released now: the held tail is cleared from
    // Envoy's copy and sent with the chunk that completes it.
    const body: BodyChange = out.length === 0 ? { kind: 'clear' } : { kind: 'replace', body: out };
    return { type: 'body', phase: m.phase, body, headers: NO_HEADER_CHANGES };
  }

  private async transform(s: Active, phase: BodyPhase, body: Buffer, earlierChunksCleared: boolean): Promise<Outbound | undefined> {
    const { ctx, scanFor } = this.deps;
    const { flow, module } = s;
    // Agent protocols come first: a call the role may not make is refused before DLP or the tier see it.
    if (flow.domain.protocol && direction(phase) === 'request') {
      const step = rpcRequestStep(flow, body, ctx.metrics);
      if (step.kind === 'refuse') {
        this.rpc = step.exchange;
        return this.refuse(flow, phase, step.reason, false, undefined, undefined, undefined, step.rpc);
      }
      this.rpc = step.exchange;
    }
    let verdict: BodyVerdict;
    try {
      const scan = scanFor?.(flow.domain);
      verdict = await processBody({
        ctx: { policy: flow.policy, domain: flow.domain, contentType: s.contentType, contentEncoding: s.contentEncoding, direction: direction(phase) },
        body,
        handler: module.handler,
        ...(scan ? { scan } : {}),
      });
    } catch (e) {
      ctx.log.error({ err: { message: (e as Error).message }, domain: flow.domain.name, decision_id: flow.decisionId, phase }, 'body processing failed');
      return this.refuse(flow, phase, 'internal_error', false, undefined);
    }
    for (const [entity, n] of Object.entries(verdict.findings)) {
      ctx.metrics.dlpFindings.inc({ domain: flow.domain.name, entity, action: flow.domain.dlp?.action ?? 'report' }, n);
    }
    if (verdict.kind === 'deny') {
      ctx.log.warn({ domain: flow.domain.name, decision_id: flow.decisionId, phase, reason: verdict.reason }, 'body refused');
      return this.refuse(flow, phase, verdict.reason, false, verdict.plaintext, verdict.findings, verdict.layers);
    }
    if (flow.domain.protocol && direction(phase) === 'response') {
      const plain = verdict.kind === 'replace' ? verdict.body : body;
      const type = verdict.kind === 'replace' ? verdict.contentType : s.contentType;
      const step = rpcResponseStep(flow, this.rpc, this.requestHeaders, plain, type, this.responseStatus);
      if (step.kind === 'refuse') {
        ctx.log.warn({ domain: flow.domain.name, decision_id: flow.decisionId, phase }, 'agent-protocol answer cannot be filtered');
        return this.refuse(flow, phase, 'payload_rejected', false, verdict.plaintext);
      }
      if (step.kind === 'replace') {
        verdict =
          verdict.kind === 'replace'
            ? { ...verdict, body: step.body }
            : { kind: 'replace', body: step.body, contentType: type ?? 'application/json', headers: {}, plaintext: verdict.plaintext, findings: verdict.findings };
      }
    }
    const outcome: Outcome = verdict.kind === 'replace' ? 'transform' : 'pass';
    const audited = await this.audit(flow, phase, outcome, 'ok', verdict.plaintext, verdict.findings);
    if (!audited) return this.refuse(flow, phase, 'audit_unavailable', false, verdict.plaintext);
    this.count(flow, phase, outcome);
    if (verdict.kind === 'replace') {
      // content-length is rewritten in the same answer that replaces the body (BUFFERED honours body-phase
      // header mutations; in STREAMED mode Envoy drops content-length itself).
      const set: Array<readonly [string, string]> = [
        ['content-type', verdict.contentType],
        ['content-length', String(verdict.body.length)],
        ...Object.entries(verdict.headers),
      ];
      return { type: 'body', phase, body: { kind: 'replace', body: verdict.body }, headers: { set, remove: [...(verdict.removeHeaders ?? [])] } };
    }
    // A request body left as it is (an empty one) loses the protected label the headers answer gave it.
    const unlabel: HeaderChanges =
      direction(phase) === 'request'
        ? { set: s.contentType ? [['content-type', s.contentType]] : [], remove: [...Object.keys(protectedRequestRepresentation(flow.domain).headers), ...(s.contentType ? [] : ['content-type'])] }
        : NO_HEADER_CHANGES;
    // Earlier chunks were cleared from Envoy's copy: the last answer must carry the whole body again.
    return earlierChunksCleared
      ? { type: 'body', phase, body: { kind: 'replace', body }, headers: unlabel }
      : { type: 'body', phase, body: { kind: 'keep' }, headers: unlabel };
  }

  private async observeBody(s: Active, stage: BodyStage, m: Extract<Inbound, { type: 'body' }>): Promise<undefined> {
    const observing = stage.stage === 'observing' ? stage : { stage: 'observing' as const, tally: new BodyTally() };
    observing.tally.add(m.body);
    s.body = observing;
    if (m.endOfStream) {
      s.body = { stage: 'complete' };
      // Envoy does not wait for answers in observability mode: the body went on unprotected. Recorded as
      // `pass` so the audit shows it; the operator is told at configuration time (docs/ext-proc.md).
      await this.audit(s.flow, m.phase, 'observe', 'ok', observing.tally.digest(), undefined);
      this.count(s.flow, m.phase, 'observe');
    }
    return undefined;
  }

  // --- trailers --------------------------------------------------------------------------------

  private async trailers(s: Active, phase: TrailersPhase): Promise<Outbound | undefined> {
    if (s.body.stage === 'receiving' || s.body.stage === 'streaming') {
      // Trailers ended a body whose chunks (or whose last record) were cleared; a trailers answer cannot carry the
      // protected body, so refuse rather than deliver an empty or plaintext one.
      this.deps.ctx.log.warn({ domain: s.flow.domain.name, decision_id: s.flow.decisionId, phase }, 'body ended by trailers cannot be replaced');
      return this.refuse(s.flow, phase, 'payload_rejected', false, undefined);
    }
    if (s.body.stage === 'expected') s.body = { stage: 'complete' };
    return s.observe ? undefined : { type: 'trailers', phase };
  }

  // --- answers, refusals, records --------------------------------------------------------------

  private answer(est: Established, out: Outbound): Outbound | undefined {
    return est.observe ? undefined : out;
  }

  private async refuse(
    flow: Flow | undefined,
    phase: Phase,
    reason: ReasonCode,
    observe: boolean,
    plaintext: PayloadDigest | undefined,
    findings?: Readonly<Record<string, number>>,
    layers?: readonly string[],
    rpc?: string,
  ): Promise<Outbound | undefined> {
    this.releaseBody();
    this.state = { at: 'finished' };
    await this.audit(flow, phase, 'deny', reason, plaintext, findings, layers);
    this.count(flow, phase, 'deny', reason);
    if (layers?.length && this.note) this.note.dlpFindings = layers;
    if (observe) return undefined;
    return rpc !== undefined ? { type: 'immediate', reason, rpc } : { type: 'immediate', reason };
  }

  private count(flow: Flow | undefined, phase: Phase, outcome: Outcome, reason: ReasonCode | 'ok' = 'ok'): void {
    this.note = {
      domain: flow?.domain.name,
      tier: flow?.domain.tier,
      role: flow?.role ?? undefined,
      outcome,
      reason,
      requestHeaders: this.requestHeaders,
      ...(this.rpc ? { rpc: { summary: this.rpc.summary, protocol: this.rpc.protocol } } : {}),
    };
    this.deps.ctx.metrics.extprocOutcomes.inc({ domain: flow?.domain.name ?? '', tier: flow?.domain.tier ?? '', phase, outcome });
  }

  /** Returns false when a record that had to be written could not be (the caller fails closed). */
  private async audit(
    flow: Flow | undefined,
    phase: Phase,
    outcome: Outcome,
    reason: ReasonCode | 'ok',
    plaintext: PayloadDigest | undefined,
    findings: Readonly<Record<string, number>> | undefined,
    layers?: readonly string[],
  ): Promise<boolean> {
    const { ctx } = this.deps;
    const decision = outcome === 'observe' ? 'pass' : outcome;
    const level = flow?.domain.auditLevel ?? ctx.policy().global.auditScope;
    const choice = shouldAudit(level, { decision, egress: flow?.egress ?? false });
    if (!choice.record) return true;
    const event: AuditEvent = {
      event: eventName(phase),
      decision_id: flow?.decisionId ?? 'none',
      domain: flow?.domain.name ?? null,
      tier: flow?.domain.tier ?? null,
      decision,
      reason,
      agent: flow?.agent ?? null,
      role: flow?.role ?? null,
      target: flow?.target ?? null,
      trace_id: flow?.traceId ?? null,
      audit_level: flow?.domain.auditLevel ?? null,
      ...(plaintext ? { payload_sha256: plaintext.sha256, payload_bytes: plaintext.bytes } : {}),
      ...(findings && Object.keys(findings).length ? { findings } : {}),
      ...(this.rpc?.summary ?? {}),
      ...(layers?.length ? { finding_layers: layers } : {}),
    };
    try {
      await ctx.audit.record(event, { durable: choice.durable });
      return true;
    } catch (e) {
      ctx.log.error({ err: { message: (e as Error).message }, decision_id: event.decision_id }, 'audit record failed');
      return false;
    }
  }
}

/**
 * Real Envoy runs a local reply through every encoder filter, including the ext_proc filter whose
 * request side never ran because ext_authz answered first (a deny, or `status_on_error` when Check
 * failed). Such a stream starts at response headers with no Check decision in the metadata. Only an
 * error status qualifies: a success that ext_proc never saw the request of means the filter is set to
 * skip request headers, and that is refused as before rather than waved through. A stream that carries
 * Check's decision is a callee's answer (request headers skipped) and is processed as one.
 */
function isLocalReply(m: Extract<Inbound, { type: 'headers' }>, msg: InboundMessage): boolean {
  if (m.phase !== 'response_headers' || msg.authz['domain']) return false;
  const status = Number(m.headers.get(':status'));
  if (Number.isInteger(status) && status >= 400 && status <= 599) return true;
  return isCheckRpcDenial(m.headers);
}

/**
 * Check's denial of a JSON-RPC call is a 200 local reply (a JSON-RPC error, contract section 7): 200,
 * JSON, and one of the agent-protocol reasons. Seen with Envoy 1.40 in e2e/mcp.test.ts.
 */
const RPC_DENIALS: ReadonlySet<string> = new Set(['method_not_allowed', 'tool_not_allowed', 'arguments_rejected']);
function isCheckRpcDenial(h: ReadonlyMap<string, string>): boolean {
  return h.get(':status') === '200' && RPC_DENIALS.has(h.get('x-mesh-reason') ?? '') && (h.get('content-type') ?? '').startsWith('application/json');
}

function eventName(phase: Phase): AuditEvent['event'] {
  switch (phase) {
    case 'request_headers':
    case 'request_trailers':
      return 'extproc.request_headers';
    case 'response_headers':
    case 'response_trailers':
      return 'extproc.response_headers';
    case 'request_body':
      return 'extproc.request_body';
    case 'response_body':
      return 'extproc.response_body';
  }
}

