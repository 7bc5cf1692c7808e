import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { checkedHeaders } from '../support/extproc-server.js';
import { loadServices } from '../../src/envoy/protos.js';
import { REASON_CODES } from '../../src/policy/reasons.js';
import { CALLER_SPIFFE, denyReason, envoyCheckRequest, setHeaders, type CheckResponseView } from '../support/envoy-check.js';
import { policyYaml, DEFAULT_DOMAINS } from '../support/mesh-fixture.js';
import { isAllow, startHarness, unsignedToken, type SecurityHarness } from './support.js';

const SPOOFABLE = ['x-agent-id', 'x-agent-role', 'x-agent-pseudonym', 'x-mesh-domain', 'x-mesh-tier', 'x-mesh-decision-id', 'x-mesh-protected', 'x-agent-whatever', 'x-mesh-reason'];

/** Every casing of a header name (capped), e.g. X-Agent-Id, x-AGENT-id, ... */
function casings(name: string, max = 6): string[] {
  const out = new Set<string>([name, name.toUpperCase(), name.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase())]);
  for (let i = 0; out.size < max && i < 64; i++) out.add([...name].map((c, j) => ((i >> j % 6) & 1 ? c.toUpperCase() : c)).join(''));
  return [...out];
}

function assertValidResponse(res: CheckResponseView): void {
  assert.ok([0, 7, 16].includes(res.status.code), `status ${res.status.code}`);
  if (res.status.code === 0) {
    assert.ok(res.ok_response, 'allow without ok_response');
    assert.ok(!res.denied_response);
  } else {
    assert.ok(res.denied_response, 'deny without denied_response');
    const reason = denyReason(res);
    assert.ok(reason && (REASON_CODES as readonly string[]).includes(reason), `reason ${reason}`);
    assert.deepEqual(JSON.parse(res.denied_response.body).reason, reason);
  }
}

/** On allow, no client-sent x-agent-* / x-mesh-* survives and the credential is removed. */
function assertNothingSpoofedSurvives(res: CheckResponseView, sent: Record<string, string>): void {
  if (!isAllow(res)) return;
  const set = setHeaders(res);
  for (const h of res.ok_response!.headers) assert.equal(h.append?.value ?? false, false, `${h.header.key} appended`);
  const removed = new Set(res.ok_response!.headers_to_remove);
  assert.ok(removed.has('authorization'));
  for (const name of Object.keys(sent)) {
    const lower = name.toLowerCase();
    if (lower.startsWith('x-agent-') || lower.startsWith('x-mesh-')) {
      assert.ok(set.has(lower) || removed.has(lower), `${name} survives`);
      if (set.has(lower)) assert.notEqual(set.get(lower), sent[name], `${name} kept the client value`);
    }
  }
}

describe('property-based fuzzing of Check and header smuggling (real gRPC server)', () => {
  let h: SecurityHarness;
  let good: string;
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  before(async () => {
    process.on('unhandledRejection', onUnhandled);
    h = await startHarness(policyYaml(DEFAULT_DOMAINS));
    good = await h.fx.token({ agent: 'fuzz-agent', role: 'ORCHESTRATOR' });
  });
  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    await h.close();
  });

  it('random CheckRequests: always a valid CheckResponse; allow only with the verified credential', async () => {
    const tokenArb = fc.oneof(
      fc.constant<string | undefined>(undefined),
      fc.constant('GOOD'),
      fc.string({ maxLength: 64 }),
      fc.constant(unsignedToken({ sub: 'x', role: 'RETRIEVER' })),
      fc.constant('eyJhbGciOiJFUzI1NiJ9.e30.AAAA'),
    );
    const headerName = fc.oneof(fc.constantFrom(...SPOOFABLE.flatMap((n) => casings(n, 3)), 'Authorization', 'AUTHORIZATION', ':authority', 'host', ':path'), fc.string({ minLength: 1, maxLength: 20 }));
    const headerValue = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('a\r\nx-agent-id: root', 'a\u0000b', 'Bearer GOOD', 'admin'), fc.string({ unit: 'binary', maxLength: 30 }));
    const reqArb = fc.record({
      token: tokenArb,
      headers: fc.dictionary(headerName, headerValue, { maxKeys: 8 }),
      principal: fc.oneof(fc.constant(CALLER_SPIFFE), fc.string({ maxLength: 40 }), fc.constant('')),
      host: fc.oneof(fc.constantFrom('memory.agents.svc', 'api.coord.svc', 'MEMORY.AGENTS.SVC:8080', ''), fc.string({ maxLength: 30 })),
      path: fc.oneof(fc.constantFrom('/v1/memory/x', '/', '/v1/memory/../admin'), fc.string({ maxLength: 30 })),
      extensions: fc.dictionary(fc.constantFrom('domain', 'hop', 'x'), fc.oneof(fc.constantFrom('agent_memory', 'coordination', 'sealed_memory', 'nope'), fc.string({ maxLength: 10 })), { maxKeys: 2 }),
    });
    await fc.assert(
      fc.asyncProperty(reqArb, async (r) => {
        const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, v.replace('GOOD', good)]));
        const token = r.token === 'GOOD' ? good : r.token;
        const req = envoyCheckRequest({ token, headers, principal: r.principal, host: r.host, path: r.path, extensions: r.extensions });
        const res = await h.client.check(req);
        assertValidResponse(res);
        if (isAllow(res)) {
          // The only credential that verifies is the one minted for fuzz-agent, and it must be the sole
          // bearer value of the request.
          const auth = Object.entries(req.attributes.request.http.headers).filter(([k]) => k.toLowerCase() === 'authorization');
          assert.deepEqual(auth.map(([, v]) => v), [`Bearer ${good}`]);
          const set = setHeaders(res);
          assert.ok(set.get('x-agent-id') === 'fuzz-agent' || set.has('x-agent-pseudonym'));
          assertNothingSpoofedSurvives(res, req.attributes.request.http.headers);
        }
      }),
      { numRuns: 300 },
    );
    assert.deepEqual(unhandled, []);
  });

  it('bit-flipped CheckRequest bytes: decodable ones get a valid CheckResponse, never an allow without the credential', async () => {
    const def = loadServices().Authorization.service.Check!;
    const raw = new grpc.Client(h.server.address, grpc.credentials.createInsecure());
    const base = def.requestSerialize(envoyCheckRequest({ token: good })) as Buffer;
    const send = (bytes: Buffer) =>
      new Promise<{ res?: CheckResponseView; err?: grpc.ServiceError }>((resolve) => {
        raw.makeUnaryRequest('/envoy.service.auth.v3.Authorization/Check', (b: Buffer) => b, (b: Buffer) => def.responseDeserialize(b) as CheckResponseView, bytes, (err, res) =>
          resolve(err ? { err } : { res: res! }),
        );
      });
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.record({ at: fc.nat(base.length - 1), bit: fc.nat(7) }), { minLength: 1, maxLength: 4 }), async (flips) => {
          const bytes = Buffer.from(base);
          for (const f of flips) bytes[f.at] = bytes[f.at]! ^ (1 << f.bit);
          let decodable = true;
          try {
            def.requestDeserialize(bytes);
          } catch {
            decodable = false;
          }
          const { res, err } = await send(bytes);
          if (!decodable) return; // grpc-js refuses undecodable bytes before any handler runs
          assert.ok(res, `decodable request got a gRPC error: ${err?.code} ${err?.details}`);
          assertValidResponse(res);
          if (isAllow(res)) {
            // An allow needs the same signed content: whatever bits flipped, the bearer value must
            // still decode to the original header, claims and signature bytes.
            const sent = def.requestDeserialize(bytes) as ReturnType<typeof envoyCheckRequest>;
            const auth = Object.entries(sent.attributes.request.http.headers).find(([k]) => k.toLowerCase() === 'authorization')?.[1] ?? '';
            const token = /^bearer\s+(\S+)$/i.exec(auth)?.[1] ?? '';
            const decode = (t: string) => t.split('.').map((seg) => Buffer.from(seg, 'base64url').toString('hex'));
            assert.deepEqual(decode(token), decode(good), 'allowed with a modified credential');
          }
        }),
        { numRuns: 200 },
      );
    } finally {
      raw.close();
    }
  });

  it('spoofed x-agent-* / x-mesh-* in every casing never survive an allow', async () => {
    for (const name of SPOOFABLE) {
      const headers: Record<string, string> = {};
      for (const c of casings(name)) headers[c] = 'root';
      for (const domain of ['agent_memory', 'coordination']) {
        const req = envoyCheckRequest({ token: good, headers, domain, host: domain === 'coordination' ? 'api.coord.svc' : undefined });
        const res = await h.client.check(req);
        assert.ok(isAllow(res), `${name} in ${domain}: ${denyReason(res)}`);
        assertNothingSpoofedSurvives(res, headers);
        assert.equal(setHeaders(res).get('x-mesh-domain'), domain, 'a client header never picks the domain');
      }
    }
  });

  it('header_map smuggling: duplicates, mixed case, CR/LF and NUL, comma joins, oversized values', async () => {
    const viaMap = (entries: Array<[string, string]>, extra: Partial<{ principal: string }> = {}) => {
      const base = envoyCheckRequest({ bare: true, principal: extra.principal });
      const http = base.attributes.request.http as Record<string, unknown>;
      const plain = http.headers as Record<string, string>;
      const pseudo = Object.entries(plain).filter(([k]) => k.startsWith(':'));
      http.headers = {};
      http.header_map = { headers: [...pseudo, ...entries].map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) };
      return base;
    };
    // Two authorization headers (one good): joined as Envoy does, which is not a single bearer value.
    for (const entries of [
      [['authorization', `Bearer ${good}`], ['authorization', 'Bearer forged']],
      [['Authorization', 'Bearer forged'], ['authorization', `Bearer ${good}`]],
      [['authorization', `Bearer ${good}\r\nx-agent-id: root`]],
      [['authorization', `Bearer ${good}\u0000`]],
      [['authorization', `Bearer ${good},Bearer ${good}`]],
    ] as Array<Array<[string, string]>>) {
      const res = await h.client.check(viaMap(entries));
      assertValidResponse(res);
      assert.equal(isAllow(res), false, JSON.stringify(entries.map(([k]) => k)));
      assert.equal(denyReason(res), 'missing_credential');
    }
    // A valid credential plus spoofed identity headers in mixed case and CR/LF: allowed, spoofs gone.
    const spoof: Array<[string, string]> = [['authorization', `Bearer ${good}`], ['X-Agent-Id', 'root'], ['x-agent-id', 'root2'], ['X-MESH-DOMAIN', 'sealed_memory'], ['x-mesh-tier', 'a\r\nb']];
    const res = await h.client.check(viaMap(spoof));
    assert.ok(isAllow(res), denyReason(res));
    assertNothingSpoofedSurvives(res, Object.fromEntries(spoof));
    // Oversized values are refused before any parsing.
    const big = await h.client.check(viaMap([['authorization', `Bearer ${good}`], ['x-big', 'a'.repeat(70_000)]]));
    assert.equal(denyReason(big), 'payload_too_large');
  });

  it('random ext_proc message sequences: every stream ends, plaintext of a protected domain never passes', async () => {
    const Proc = loadServices().ExternalProcessor;
    const client = new Proc(h.server.address, grpc.credentials.createInsecure()) as unknown as { Process(): grpc.ClientDuplexStream<object, Record<string, unknown>>; close(): void };
    const MARK = 'PLAINTEXT-MARKER-7731';
    const hdrs = (list: Array<[string, string]>) => ({ headers: list.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) });
    const key = h.server.runtime.pseudonyms.bindingKey();
    const reqHeaders = (domain: string, eos: boolean) => ({
      request_headers: { headers: hdrs([[':method', 'POST'], [':path', '/v1/memory/x'], ...(domain ? checkedHeaders(domain, { method: 'POST', path: '/v1/memory/x' }, { key }) : []), ['content-type', 'application/json']]), end_of_stream: eos },
    });
    const headersArb = fc.record({ domain: fc.constantFrom('agent_memory', 'agent_memory', 'coordination', 'nope', ''), eos: fc.boolean() }).map((r) => reqHeaders(r.domain, r.eos));
    const msgArb = fc.oneof(
      headersArb,
      fc.record({ body: fc.string({ maxLength: 200 }), eos: fc.boolean() }).map((r) => ({ request_body: { body: Buffer.from(JSON.stringify({ note: MARK, x: r.body })), end_of_stream: r.eos } })),
      fc.record({ eos: fc.boolean() }).map((r) => ({ response_headers: { headers: hdrs([[':status', '200'], ['content-type', 'application/json']]), end_of_stream: r.eos } })),
      fc.record({ body: fc.string({ maxLength: 100 }) }).map((r) => ({ response_body: { body: Buffer.from(r.body), end_of_stream: true } })),
      fc.constant({ request_trailers: { trailers: hdrs([['x-t', '1']]) } }),
      fc.constant({}),
    );
    let checkedBodies = 0;
    try {
      await fc.assert(
        // Mostly well-started exchanges (headers first, as Envoy does), with random continuations.
        fc.asyncProperty(fc.oneof(fc.tuple(headersArb, fc.array(msgArb, { maxLength: 5 })).map(([h0, rest]) => [h0, ...rest]), fc.array(msgArb, { minLength: 1, maxLength: 6 })), async (messages) => {
          const call = client.Process();
          const answers: Array<Record<string, unknown>> = [];
          call.on('data', (a) => answers.push(a));
          const ended = new Promise<grpc.StatusObject>((resolve) => {
            call.on('status', resolve);
            call.on('error', () => undefined);
          });
          for (const m of messages) call.write(m);
          call.end();
          const status = await ended;
          assert.ok(typeof status.code === 'number');
          assert.ok(answers.length <= messages.length, 'more answers than messages');
          // A request body of a protected domain is never continued with its plaintext intact.
          const protectedDomain = messages.some((m) => {
            const list = (m as { request_headers?: { headers: { headers: Array<{ key: string; raw_value: Buffer }> } } }).request_headers?.headers.headers ?? [];
            return list.some((x) => x.key === 'x-mesh-domain' && Buffer.from(x.raw_value).toString() === 'agent_memory');
          });
          for (const a of answers) {
            const rb = a.request_body as { response?: { body_mutation?: { body?: Buffer; clear_body?: boolean } | null } } | undefined;
            if (protectedDomain && rb) {
              // Either the chunk is withheld (clear_body, while STREAMED chunks buffer) or it is replaced
              // by protected bytes; a CONTINUE without a mutation would forward the plaintext.
              const m = rb.response?.body_mutation;
              const withheld = m?.clear_body === true;
              assert.ok(withheld || (m?.body && m.body.length > 0 && !Buffer.from(m.body).includes(MARK)), 'plaintext of a protected domain forwarded');
              checkedBodies++;
            }
          }
        }),
        // One known protected exchange always runs, so the plaintext assertion is exercised every time.
        { numRuns: 120, examples: [[[reqHeaders('agent_memory', false), { request_body: { body: Buffer.from(JSON.stringify({ note: MARK })), end_of_stream: true } }]]] },
      );
    } finally {
      client.close();
    }
    assert.ok(checkedBodies > 0, 'no protected request body was ever continued: the property was not exercised');
    assert.deepEqual(unhandled, []);
  });
});
