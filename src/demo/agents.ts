import type { HttpResponse } from '../envoy/peer/ext-proc-peer.js';
import type { CompiledPolicy } from '../config/types.js';
import { tierModule } from '../protect/registry.js';
import { enclavePrivateKeyFile } from '../protect/computation/index.js';
import { FheAnalyst } from '../protect/fhe/index.js';

/**
 * The callees of the demo, each a tiny HTTP handler behind the sidecar: a memory store that keeps
 * whatever it is given, an executor that reports what reached it, an attested enclave that opens
 * what was sealed to it, and a model service that scores encrypted features without the secret key.
 */
type Req = { headers: Array<[string, string]>; body: Buffer };

const header = (r: Req, n: string) => r.headers.find(([k]) => k === n)?.[1];
const json = (status: number, v: unknown): HttpResponse => {
  const body = Buffer.from(JSON.stringify(v));
  return { status, headers: [[':status', String(status)], ['content-type', 'application/json'], ['content-length', String(body.length)], ['server', 'agent-runtime/1.4'], ['x-powered-by', 'python']], body };
};

export class MemoryStore {
  readonly objects = new Map<string, { body: Buffer; contentType: string }>();
  handle = (r: Req): HttpResponse => {
    const path = header(r, ':path') ?? '/';
    if (header(r, ':method') === 'PUT') {
      this.objects.set(path, { body: r.body, contentType: header(r, 'content-type') ?? 'application/octet-stream' });
      return { status: 204, headers: [[':status', '204'], ['server', 'memory-db/2.1']] };
    }
    const o = this.objects.get(path);
    if (!o) return json(404, { error: 'not found' });
    return { status: 200, headers: [[':status', '200'], ['content-type', o.contentType], ['content-length', String(o.body.length)], ['server', 'memory-db/2.1']], body: o.body };
  };
}

/** What the callee received, for the demo's "callee saw" column. */
export const lastSeen = new Map<string, string>();

export function executor(r: Req): HttpResponse {
  lastSeen.set('executor', `${header(r, 'content-type')}: ${r.body.toString('utf8').slice(0, 40)}…`);
  return json(200, { accepted: true });
}

export function enclave(policy: CompiledPolicy) {
  return async (r: Req): Promise<HttpResponse> => {
    const domain = policy.domainsByName.get('pii_inference')!;
    const mod = await tierModule('COMPUTATION');
    // Only the enclave holds this private key; mesh-pep and the sidecars never do.
    const plain = await mod.openForOperator(r.body, { policy, domain, keyFiles: [enclavePrivateKeyFile(policy, domain)] });
    const doc = JSON.parse(Buffer.from(plain).toString('utf8')) as { income?: number; debts?: number };
    lastSeen.set('enclave', `opened inside the enclave: ${Object.keys(doc).join(', ')}`);
    const risk = Math.min(1, (doc.debts ?? 0) / Math.max(1, doc.income ?? 1));
    return json(200, { risk: Number(risk.toFixed(3)) });
  };
}

export function modelService(policy: CompiledPolicy, weights: number[], bias: number) {
  return async (r: Req): Promise<HttpResponse> => {
    const doc = JSON.parse(r.body.toString('utf8')) as { features: unknown; client?: unknown };
    lastSeen.set('model', `features: ${JSON.stringify(doc.features).slice(0, 48)}…`);
    // The model service computes on ciphertext with public material only; it never sees a feature.
    const analyst = await FheAnalyst.open(policy.keys.dir, 'financial_models');
    const score = await analyst.dot(doc.features, weights, bias);
    return json(200, { score });
  };
}
