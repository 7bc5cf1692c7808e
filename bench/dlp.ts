/**
 * Leak-guard benchmark: `npm run build && node dist/bench/dlp.js`.
 * Prints scan throughput (MB/s) on realistic agent JSON bodies with the default budget, and recall /
 * false-positive rate on the synthetic probe set over several seeds. Figures are per machine; the
 * targets (issue 19) are ≥ 80 MB/s on clean JSON, ≥ 30 MB/s with the new layers engaged, recall ≥ 0.99 (CANARY 1.0),
 * false positives ≤ 0.01.
 */
import { performance } from 'node:perf_hooks';
import { compileDlp } from '../src/dlp/index.js';
import { buildProbeSet } from '../src/dlp/probe-set.js';
import { runOffline, scorableEntities, scoreProbes } from '../src/dlp/probe-score.js';
import { SeededRandom } from '../src/dlp/probe-values.js';

const WORDS = ('the order shipment invoice customer agent tool result memory summary pending approved total region ' +
  'service latency retry status warehouse carrier forecast quarter revenue margin ticket escalation policy review').split(' ');

function prose(r: SeededRandom, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(r.pick(WORDS));
  return `${out.join(' ')}. Order ${r.int(1000, 999999)} updated on 2026-11-${r.int(10, 28)} at ${r.int(10, 23)}:${r.int(10, 59)} for ${r.int(1, 999)}.${r.int(10, 99)} EUR.`;
}

/** A chat-completions request of an agent loop: messages, tool calls with JSON arguments, tool results. */
function agentBody(r: SeededRandom, turns: number): string {
  const messages: unknown[] = [{ role: 'system', content: prose(r, 40) }];
  for (let i = 0; i < turns; i++) {
    messages.push({ role: 'user', content: prose(r, r.int(20, 120)) });
    messages.push({
      role: 'assistant',
      content: null,
      tool_calls: [{ id: `call_${i}`, type: 'function', function: { name: 'lookup_orders', arguments: JSON.stringify({ region: 'emea', status: ['pending', 'approved'], limit: 25, cursor: `c${r.int(1, 1e6)}` }) } }],
    });
    const rows = Array.from({ length: r.int(5, 20) }, (_, k) => ({ id: 100000 + k, sku: `SKU-${r.int(100, 999)}`, qty: r.int(1, 50), unit_price: r.int(100, 99999) / 100, note: prose(r, 8), updated_at: 1764300000 + k }));
    messages.push({ role: 'tool', tool_call_id: `call_${i}`, content: JSON.stringify({ rows, next: null }) });
    messages.push({ role: 'assistant', content: prose(r, r.int(30, 90)) });
  }
  return JSON.stringify({ model: 'agent-llm', temperature: 0.2, messages });
}

function bodyOfSize(r: SeededRandom, target: number): Uint8Array {
  let turns = 1;
  let s = agentBody(r, turns);
  while (s.length < target) {
    turns *= 2;
    s = agentBody(r, turns);
  }
  return new TextEncoder().encode(s);
}

/**
 * The same agent traffic with every leak-guard-2 layer engaged (no findings): prose with non-ASCII
 * text (normalization view), HTML character references, hex blobs, MIME-wrapped base64 attachments
 * and double URL encoding in tool arguments.
 */
function layeredBody(r: SeededRandom, target: number): Uint8Array {
  const parts: unknown[] = [];
  let size = 0;
  while (size < target) {
    const text = `${prose(r, 30)} Grüße aus Köln – “quoted” naïve café ${r.int(1, 999)}\u00a0€`;
    const item = {
      role: 'tool',
      content: JSON.stringify({
        html: `<p>Order&nbsp;${r.int(1000, 9999)} &amp; ${prose(r, 6)} &#8211; done</p>`,
        hex: Buffer.from(prose(r, 8)).toString('hex'),
        attachment: Buffer.from(prose(r, 40)).toString('base64').replace(/(.{76})(?=.)/g, '$1\r\n'),
        next: `https://api.acme.io/r?q=${encodeURIComponent(encodeURIComponent(prose(r, 6)))}`,
        text,
      }),
    };
    parts.push(item);
    size += JSON.stringify(item).length;
  }
  return new TextEncoder().encode(JSON.stringify({ model: 'agent-llm', messages: parts }));
}

function throughput(label: string, body: Uint8Array, withCanary: boolean): void {
  const scanner = compileDlp({ action: 'redact', entities: [], canaries: withCanary ? ['MESHPEP-CANARY-[0-9a-f]{16}'] : [] });
  const minMs = 1500;
  for (let i = 0; i < 5; i++) scanner.scan(body, 'application/json');
  let n = 0;
  let truncated = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < minMs) {
    if (scanner.scan(body, 'application/json').truncated) truncated++;
    n++;
    elapsed = performance.now() - t0;
  }
  const mbps = (body.length * n) / 1e6 / (elapsed / 1000);
  console.log(`  ${label.padEnd(34)} ${(body.length / 1024).toFixed(0).padStart(6)} KiB  ${mbps.toFixed(1).padStart(7)} MB/s  ${(elapsed / n).toFixed(2).padStart(8)} ms/body  truncated ${truncated}/${n}`);
}

console.log('$ node dist/bench/dlp.js');
console.log(`node ${process.version}, default budget (50 ms/body)`);
console.log('\nthroughput, action redact, all entities, realistic agent JSON (no findings):');
const r = new SeededRandom(42);
for (const size of [4 * 1024, 64 * 1024, 1024 * 1024]) throughput('agent chat request', bodyOfSize(r, size), false);
throughput('agent chat request + 1 canary', bodyOfSize(r, 64 * 1024), true);
console.log('\nthroughput with the leak-guard-2 layers engaged (Unicode, HTML refs, hex, MIME base64, double URL):');
for (const size of [64 * 1024, 1024 * 1024]) throughput('layered agent traffic', layeredBody(r, size), false);

console.log('\nrecall and false positives on the probe set (5 seeds × 25 entities × 7 channels × 10 transforms, round-robin):');
let pos = 0, caught = 0, neg = 0, fps = 0, canaryPos = 0, canaryCaught = 0;
for (let seed = 1; seed <= 5; seed++) {
  const set = buildProbeSet({ seed, positives: 4, negatives: 3 });
  const settings = { action: 'redact' as const, entities: [], canaries: [set.canaryPattern] };
  const s = scoreProbes(runOffline(set, settings), scorableEntities(settings, set));
  pos += s.positives; caught += s.caught; neg += s.negatives; fps += s.falsePositives;
  canaryPos += s.byEntity.CANARY?.positives ?? 0; canaryCaught += s.byEntity.CANARY?.caught ?? 0;
}
console.log(`  recall ${(caught / pos).toFixed(4)} (${caught}/${pos})   CANARY ${(canaryCaught / canaryPos).toFixed(4)}   false-positive rate ${(fps / neg).toFixed(4)} (${fps}/${neg})`);
