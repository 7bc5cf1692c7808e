import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { DLP_ENTITIES, type DlpEntity } from './entities.js';
import { PROBE_CANARY_PATTERN, SeededRandom, lookAlike, plantValue } from './probe-values.js';

/**
 * The synthetic probe set behind `mesh-pep probe` (AgentLeak-style): planted values of every entity in
 * the shapes inter-agent traffic takes — chat messages, tool-call arguments, tool results, memory
 * writes, reasoning summaries, log lines — wrapped in the encodings agents use (JSON in JSON, base64,
 * URL and form encoding, backslash escapes, gzip), plus look-alikes that must not be flagged and the
 * topology headers a masking domain must strip.
 */
export const PROBE_CHANNELS = ['message', 'tool_call', 'tool_result', 'memory_write', 'reasoning', 'log', 'event_stream'] as const;

/**
 * Obfuscations and encodings applied on top of the channel's own shape (leak guard 2): invisible
 * characters, Unicode separators and compatibility forms inside the value; hex, HTML character
 * references, MIME-wrapped base64 and double URL encoding around the sentence; deflate and brotli as
 * the body's content coding. Assigned round-robin, so every entity meets every transform over a seed.
 */
export const PROBE_TRANSFORMS = ['none', 'zero-width', 'unicode-separators', 'fullwidth', 'html', 'hex', 'mime-base64', 'double-url', 'deflate', 'br'] as const;
export type ProbeTransform = (typeof PROBE_TRANSFORMS)[number];
export type ProbeChannel = (typeof PROBE_CHANNELS)[number];

export interface Probe {
  id: string;
  channel: ProbeChannel;
  /** positive: carries a planted value that must be caught; negative: a look-alike that must not be. */
  kind: 'positive' | 'negative';
  entity: DlpEntity;
  /** The planted value or look-alike (kept in memory only; the scorer searches the audit file for it). */
  value: string;
  /** How the value was wrapped, for reading the score (`json`, `json-in-json`, `base64`, `url`, `form`, `gzip`, `escaped`, `text`, `sse`). */
  encoding: string;
  /** The obfuscation applied on top (PROBE_TRANSFORMS). */
  transform: ProbeTransform;
  method: string;
  path: string;
  contentType: string;
  /** The body's content coding (`gzip`, `deflate`, `br`), when compressed. */
  contentEncoding: string | undefined;
  body: Uint8Array;
}

export interface TopologyHeader {
  name: string;
  value: string;
}

export interface ProbeSet {
  seed: number;
  probes: Probe[];
  headers: TopologyHeader[];
  /** The canary pattern the planted CANARY values match; `dlp.canaries` must include a pattern matching them. */
  canaryPattern: string;
}

export interface ProbeSetOptions {
  seed?: number;
  /** Positives per entity and channel (default 2). */
  positives?: number;
  /** Look-alikes per entity and channel (default 1). */
  negatives?: number;
  /** Transforms to cycle through (default: all of PROBE_TRANSFORMS). */
  transforms?: readonly ProbeTransform[];
}

/** Entities that are findings only with a context word: the sentence supplies it, as real text would. */
function positiveSentence(entity: DlpEntity, v: string): string {
  switch (entity) {
    case 'ABA_ROUTING':
      return `Please wire the refund using routing number ${v} today.`;
    case 'AWS_SECRET_KEY':
      return `Deploy with aws_secret_access_key=${v} in the environment.`;
    case 'US_SSN':
      return `Customer SSN is ${v} according to the intake form.`;
    case 'PHONE':
      return `Call the customer at ${v} tomorrow morning.`;
    default:
      return `Here is the value ${v} for the next step.`;
  }
}

function negativeSentence(entity: DlpEntity, v: string): string {
  // SSN look-alikes keep their context so the issuance rules, not the missing context, are tested.
  if (entity === 'US_SSN') return `Customer SSN is ${v} according to the intake form.`;
  if (entity === 'CREDIT_CARD') return `The card number on file is ${v} per the ticket.`;
  return `Note that ${v} was mentioned in the ticket.`;
}

interface Shaped {
  body: Uint8Array;
  contentType: string;
  contentEncoding: string | undefined;
  path: string;
  encoding: string;
}

const enc = new TextEncoder();
const json = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));

function shape(channel: ProbeChannel, sentence: string, n: number): Shaped {
  const variant = n % 3;
  switch (channel) {
    case 'message':
      return {
        body: json({ model: 'agent-llm', messages: [{ role: 'system', content: 'You are the billing agent.' }, { role: 'user', content: sentence }] }),
        contentType: 'application/json', contentEncoding: undefined, path: '/v1/chat/completions', encoding: 'json',
      };
    case 'tool_call':
      return {
        body: json({ model: 'agent-llm', messages: [{ role: 'assistant', content: null, tool_calls: [{ id: `call_${n}`, type: 'function', function: { name: 'send_message', arguments: JSON.stringify({ channel: 'ops', text: sentence }) } }] }] }),
        contentType: 'application/json', contentEncoding: undefined, path: '/v1/chat/completions', encoding: 'json-in-json',
      };
    case 'tool_result': {
      const content =
        variant === 0 ? JSON.stringify({ status: 'ok', result: { note: sentence } })
        : variant === 1 ? JSON.stringify({ status: 'ok', attachment: { encoding: 'base64', data: Buffer.from(sentence, 'utf8').toString('base64') } })
        : JSON.stringify({ status: 'ok', next: `https://api.acme.io/search?q=${encodeURIComponent(sentence)}&page=2` });
      return {
        body: json({ role: 'tool', tool_call_id: `call_${n}`, content }),
        contentType: 'application/json', contentEncoding: undefined, path: '/v1/tools/result', encoding: ['json-in-json', 'base64', 'url'][variant],
      };
    }
    case 'memory_write':
      if (variant === 1) {
        const form = new URLSearchParams({ op: 'upsert', namespace: 'agent/planner', key: `note-${n}`, text: sentence }).toString();
        return { body: enc.encode(form), contentType: 'application/x-www-form-urlencoded', contentEncoding: undefined, path: '/memory/write', encoding: 'form' };
      }
      return {
        body: json({ op: 'upsert', namespace: 'agent/planner', records: [{ key: `note-${n}`, text: sentence, ttl_s: 86400 }] }),
        contentType: 'application/json', contentEncoding: undefined, path: '/memory/write', encoding: 'json',
      };
    case 'reasoning':
      return {
        body: json({ type: 'reasoning', id: `rs_${n}`, summary: [{ type: 'summary_text', text: `Thinking about the request. ${sentence}` }] }),
        contentType: 'application/json', contentEncoding: undefined, path: '/v1/responses', encoding: 'json',
      };
    case 'log': {
      const line = variant === 2
        ? `2026-11-28T06:00:0${n % 10}.123Z INFO planner payload="${JSON.stringify(JSON.stringify({ note: sentence })).slice(1, -1)}"\n`
        : `2026-11-28T06:00:0${n % 10}.123Z INFO planner msg="${sentence}"\n`;
      const text = enc.encode(line);
      if (variant === 1) return { body: gzipSync(text), contentType: 'text/plain', contentEncoding: 'gzip', path: '/logs/ingest', encoding: 'gzip' };
      return { body: text, contentType: 'text/plain', contentEncoding: undefined, path: '/logs/ingest', encoding: variant === 2 ? 'escaped' : 'text' };
    }
    case 'event_stream': {
      // An MCP tool result streamed as SSE (Streamable HTTP), or an NDJSON line stream.
      const msg = JSON.stringify({ jsonrpc: '2.0', id: n, result: { content: [{ type: 'text', text: sentence }] } });
      const ping = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: n } });
      if (variant === 1) return { body: enc.encode(`${ping}\n${msg}\n`), contentType: 'application/x-ndjson', contentEncoding: undefined, path: '/mcp', encoding: 'ndjson' };
      return { body: enc.encode(`event: message\ndata: ${ping}\n\nid: ${n}\nevent: message\ndata: ${msg}\n\n`), contentType: 'text/event-stream', contentEncoding: undefined, path: '/mcp', encoding: 'sse' };
    }
  }
}

function withTransform(t: ProbeTransform, value: string, sentence: string, r: SeededRandom): string {
  const inValue = (f: (v: string) => string) => sentence.split(value).join(f(value));
  switch (t) {
    case 'zero-width':
      return inValue((v) => [...v].map((c, i) => (i > 0 && i % r.int(2, 5) === 0 ? `${r.pick(['\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad'])}${c}` : c)).join(''));
    case 'unicode-separators':
      return inValue((v) => v.replace(/ /g, () => r.pick(['\u00a0', '\u2009', '\u202f', '\u3000'])).replace(/-/g, () => r.pick(['\u2010', '\u2011', '\u2013', '\u2212'])));
    case 'fullwidth':
      return inValue((v) => v.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)));
    case 'html':
      return inValue((v) => v.replace(/[@.:0-9]/g, (c) => (r.next() < 0.5 ? `&#${c.charCodeAt(0)};` : `&#x${c.charCodeAt(0).toString(16)};`)));
    case 'hex':
      return `hex:${Buffer.from(sentence, 'utf8').toString('hex')}`;
    case 'mime-base64':
      return `${Buffer.from(`Forwarded note follows. ${sentence} End of the forwarded note.`, 'utf8').toString('base64').replace(/(.{76})(?=.)/g, '$1\r\n')}`;
    case 'double-url':
      return `https://api.acme.io/r?next=${encodeURIComponent(encodeURIComponent(sentence))}`;
    default:
      return sentence;
  }
}

function compress(s: Shaped, t: ProbeTransform): Shaped {
  if ((t !== 'deflate' && t !== 'br') || s.contentEncoding) return s;
  return { ...s, body: t === 'deflate' ? deflateSync(s.body) : brotliCompressSync(s.body), contentEncoding: t };
}

/** Topology-revealing request headers (contract section 4) with plausible values. */
export function topologyHeaders(r: SeededRandom): TopologyHeader[] {
  const ip = () => `10.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(1, 254)}`;
  return [
    { name: 'x-forwarded-for', value: `${ip()}, ${ip()}` },
    { name: 'x-real-ip', value: ip() },
    { name: 'forwarded', value: `for=${ip()};proto=https` },
    { name: 'via', value: '1.1 istio-ingressgateway' },
    { name: 'x-forwarded-client-cert', value: 'By=spiffe://cluster.local/ns/agents/sa/planner;Hash=abc123' },
    { name: 'x-envoy-peer-metadata', value: 'ChwKDkFQUF9DT05UQUlORVJTEgoaCHBsYW5uZXI=' },
    { name: 'x-envoy-peer-metadata-id', value: 'sidecar~10.1.2.3~planner-7d9f.agents~agents.svc.cluster.local' },
    { name: 'x-envoy-attempt-count', value: '1' },
    { name: 'x-envoy-expected-rq-timeout-ms', value: '15000' },
    { name: 'x-envoy-original-path', value: '/internal/v1/route' },
    { name: 'x-envoy-internal', value: 'true' },
    { name: 'x-envoy-external-address', value: ip() },
    { name: 'x-envoy-downstream-service-cluster', value: 'planner' },
    { name: 'x-envoy-downstream-service-node', value: 'sidecar~10.1.2.3~planner' },
    { name: 'x-envoy-decorator-operation', value: 'orders.agents.svc.cluster.local:8080/*' },
    { name: 'user-agent', value: 'planner-agent/2.3 (python-httpx)' },
    { name: 'x-sender-ip', value: ip() },
    { name: 'x-routing-path', value: 'planner>billing>ledger' },
    { name: 'x-internal-id', value: `node-${r.digits(6)}` },
    { name: 'x-timestamp', value: '2026-11-28T06:00:00Z' },
  ];
}

export function buildProbeSet(opts: ProbeSetOptions = {}): ProbeSet {
  const seed = opts.seed ?? 20261128;
  const positives = opts.positives ?? 2;
  const negatives = opts.negatives ?? 1;
  const transforms: readonly ProbeTransform[] = opts.transforms ?? PROBE_TRANSFORMS;
  const r = new SeededRandom(seed);
  const probes: Probe[] = [];
  let n = 0;
  for (const entity of DLP_ENTITIES) {
    for (const channel of PROBE_CHANNELS) {
      for (let k = 0; k < positives; k++) {
        const value = plantValue(entity, r, n);
        const t = transforms[n % transforms.length];
        probes.push(probe(`p${n}`, channel, 'positive', entity, value, t, compress(shape(channel, withTransform(t, value, positiveSentence(entity, value), r), n), t)));
        n++;
      }
      for (let k = 0; k < negatives; k++) {
        const value = lookAlike(entity, r, n);
        const t = transforms[n % transforms.length];
        probes.push(probe(`n${n}`, channel, 'negative', entity, value, t, compress(shape(channel, withTransform(t, value, negativeSentence(entity, value), r), n), t)));
        n++;
      }
    }
  }
  return { seed, probes, headers: topologyHeaders(r), canaryPattern: PROBE_CANARY_PATTERN };
}

function probe(id: string, channel: ProbeChannel, kind: Probe['kind'], entity: DlpEntity, value: string, transform: ProbeTransform, s: Shaped): Probe {
  return { id, channel, kind, entity, value, transform, encoding: s.encoding, method: 'POST', path: s.path, contentType: s.contentType, contentEncoding: s.contentEncoding, body: s.body };
}
