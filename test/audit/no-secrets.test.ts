import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { pino } from 'pino';
import { FileAuditSink } from '../../src/audit/file-sink.js';
import type { AuditEvent } from '../../src/audit/record.js';
import { auditTarget } from '../../src/audit/target.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { checkEvent, tempAudit } from './fixtures.js';

test('no token, payload or smuggled header value ever reaches the audit file or the log', async () => {
  const t = await tempAudit();
  let logText = '';
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(c: Buffer, _e, cb) {
        logText += c.toString('utf8');
        cb();
      },
    }),
  );
  try {
    const { privateKey } = await generateKeyPair('ES256');
    const token = await new SignJWT({ role: 'retriever' })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('https://issuer.mesh.local')
      .setSubject('agent-7')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    const secret = `PLANTED-${randomBytes(12).toString('hex')}`;
    const payload = JSON.stringify({ patient: 'Jane Roe', ssn: '078-05-1120', note: secret });
    const pseudonymKey = randomBytes(32);

    const sink = await FileAuditSink.open(t.settings, { log });
    // What the core produces for a body phase: target without the query, payload only as hash+size.
    await sink.record(
      checkEvent(1, {
        event: 'extproc.request_body',
        decision: 'transform',
        target: auditTarget('KB.internal', `/v1/records/42?access_token=${token}&sig=${secret}`, undefined),
        payload_sha256: createHash('sha256').update(payload).digest('hex'),
        payload_bytes: Buffer.byteLength(payload),
      }),
      { durable: true },
    );
    await sink.record(
      checkEvent(2, { target: auditTarget('kb.internal', `/v1/records/${secret}`, { key: pseudonymKey }) }),
      { durable: true },
    );
    // A careless caller: a token where an id belongs and request fields spread into the event.
    const careless = {
      ...checkEvent(3, { agent: token, role: `Bearer ${token}` }),
      authorization: `Bearer ${token}`,
      headers: { authorization: `Bearer ${token}`, 'x-envoy-peer-metadata': secret },
      body: payload,
    } as unknown as AuditEvent;
    await sink.record(careless, { durable: true });
    await sink.close();

    const file = await readFile(t.settings.file, 'utf8');
    const [header, claims, signature] = token.split('.');
    for (const needle of [token, header!, claims!, signature!, payload, secret, 'Jane Roe', '078-05-1120', 'access_token']) {
      assert.ok(!file.includes(needle), `audit file holds ${needle.slice(0, 12)}…`);
      assert.ok(!logText.includes(needle), `log holds ${needle.slice(0, 12)}…`);
    }
    const recs = file.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(recs[0]!.target, 'kb.internal/v1/records/42');
    assert.match(String(recs[1]!.target), /^kb\.internal#[0-9a-f]{64}$/);
    assert.equal(recs[2]!.agent, '[redacted]');
    assert.equal('authorization' in recs[2]!, false);
    assert.equal('headers' in recs[2]!, false);
    assert.equal('body' in recs[2]!, false);
    assert.match(logText, /credential-like value; replaced/);
    assert.equal((await verifyAuditChain(t.settings.file)).ok, true);
  } finally {
    await t.cleanup();
  }
});
