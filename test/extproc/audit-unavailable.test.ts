import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { FileAuditSink } from '../../src/audit/file-sink.js';
import { loadPolicyFile } from '../../src/config/load.js';
import { createExtProcService, extProcServiceDefinition } from '../../src/envoy/ext-proc/service.js';
import { Pseudonymizer } from '../../src/masking/pseudonym.js';
import { tierModule } from '../../src/protect/registry.js';
import type { ServerContext } from '../../src/server/context.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { createTracing } from '../../src/telemetry/tracing.js';
import { EnvoyPeer, header } from '../support/envoy-peer.js';
import { boundMetadata, put, TEST_POLICY } from '../support/extproc-server.js';

/**
 * FULL_MESH: a body is only answered once its audit record is durable. With an audit log that can no
 * longer be written (the real file sink, closed), the body is refused with 503 and never forwarded.
 */
describe('ext_proc fails closed when the audit log is unavailable', () => {
  let dir: string;
  let server: grpc.Server;
  let address: string;
  let bindingKey: Uint8Array;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-pep-extproc-audit-'));
    await writeFile(join(dir, 'policy.yaml'), TEST_POLICY);
    const policy = (await loadPolicyFile(join(dir, 'policy.yaml'))).policy;
    const domain = policy.domainsByName.get('notes')!;
    await (await tierModule('RETRIEVAL')).ensureDevKeys(policy, domain);
    const audit = await FileAuditSink.open(policy.audit);
    await audit.close();
    const ctx: ServerContext = {
      policy: () => policy,
      audit,
      metrics: createMetrics(),
      log: createLogger('silent'),
      pseudonyms: new Pseudonymizer(randomBytes(32)),
      tracing: createTracing({}),
    };
    bindingKey = ctx.pseudonyms.bindingKey();
    server = new grpc.Server();
    server.addService(extProcServiceDefinition(), createExtProcService(ctx));
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    address = `127.0.0.1:${port}`;
  });
  after(async () => {
    server?.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 503 audit_unavailable and nothing reaches the callee', async () => {
    const p = new EnvoyPeer({ address, mode: { requestBody: 'BUFFERED', responseBody: 'BUFFERED' }, authzMetadata: boundMetadata({ domain: 'notes' }, { key: bindingKey }) });
    let reached = false;
    try {
      const r = await p.exchange(put('/v1/notes/a', Buffer.from('must be audited first'), 'text/plain', 'notes'), () => {
        reached = true;
        return { status: 204, headers: [] };
      });
      assert.equal(r.kind, 'local');
      assert.equal(r.response.status, 503);
      assert.equal(header(r.response.headers, 'x-mesh-reason'), 'audit_unavailable');
      assert.equal(reached, false);
    } finally {
      p.close();
    }
  });
});
