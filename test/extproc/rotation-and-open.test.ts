import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeProtectedHeader } from 'jose';
import { EnvoyPeer } from '../support/envoy-peer.js';
import { boundMetadata, get, MemoryStore, put, startTestServer, type TestServer } from '../support/extproc-server.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function cli(args: string[], stdin?: Buffer): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { encoding: 'buffer' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString() });
    });
    if (stdin) child.stdin!.end(stdin);
    else child.stdin!.end();
  });
}

const kidOf = (jwe: Buffer) => String(decodeProtectedHeader(jwe.toString()).kid);

describe('key rotation and `mesh-pep open` (RETRIEVAL)', () => {
  let t: TestServer;
  let p: EnvoyPeer;
  const store = new MemoryStore();
  before(async () => {
    t = await startTestServer();
    p = new EnvoyPeer({ address: t.address, mode: { requestBody: 'BUFFERED', responseBody: 'BUFFERED' }, authzMetadata: boundMetadata({ domain: 'agent_memory' }) });
  });
  after(async () => {
    p?.close();
    await t?.close();
  });

  const write = async (path: string, body: Buffer) => {
    await p.exchange(put(path, body, 'application/json'), store.handle);
    return store.objects.get(path)!.body;
  };

  it('the development keyring is a 0600 JWK Set of A256KW oct keys', async () => {
    const file = t.keyringOf('agent_memory');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const ring = JSON.parse(await readFile(file, 'utf8')) as { keys: Array<Record<string, string>> };
    assert.equal(ring.keys.length, 1);
    assert.deepEqual({ kty: ring.keys[0]!.kty, alg: ring.keys[0]!.alg, use: ring.keys[0]!.use }, { kty: 'oct', alg: 'A256KW', use: 'enc' });
    assert.equal(Buffer.from(ring.keys[0]!.k!, 'base64url').length, 32);
  });

  it('after `keys rotate` new bodies use the new key and old ciphertext still opens, through the server and the CLI', async () => {
    const before = Buffer.from('{"written":"before rotation"}');
    const oldJwe = await write('/v1/memory/old', before);
    const oldKid = kidOf(oldJwe);

    const r = await cli(['keys', 'rotate', '--config', t.policyFile, '--domain', 'agent_memory']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /agent_memory: added key \S+ \(2 keys\)/);
    const ring = JSON.parse(await readFile(t.keyringOf('agent_memory'), 'utf8')) as { keys: Array<{ kid: string }> };
    assert.equal(ring.keys.length, 2);
    assert.equal(ring.keys[0]!.kid, oldKid, 'old key kept, first');
    assert.equal((await stat(t.keyringOf('agent_memory'))).mode & 0o777, 0o600);

    // The server re-reads a changed keyring within about a second; wait (bounded) until it seals with the new key.
    const afterBody = Buffer.from('{"written":"after rotation"}');
    let newJwe = await write('/v1/memory/new', afterBody);
    for (let i = 0; i < 30 && kidOf(newJwe) === oldKid; i++) {
      await new Promise((res) => setTimeout(res, 100));
      newJwe = await write('/v1/memory/new', afterBody);
    }
    assert.equal(kidOf(newJwe), ring.keys[1]!.kid);

    assert.deepEqual((await p.exchange(get('/v1/memory/old'), store.handle)).response.body, before);
    assert.deepEqual((await p.exchange(get('/v1/memory/new'), store.handle)).response.body, afterBody);

    const oldFile = join(t.dir, 'old.jwe');
    await writeFile(oldFile, oldJwe);
    const o1 = await cli(['open', '--config', t.policyFile, '--domain', 'agent_memory', oldFile]);
    assert.equal(o1.code, 0, o1.stderr);
    assert.deepEqual(o1.stdout, before);
    const o2 = await cli(['open', '--config', t.policyFile, '--domain', 'agent_memory'], newJwe);
    assert.equal(o2.code, 0, o2.stderr);
    assert.deepEqual(o2.stdout, afterBody);
    // --key names the keyring explicitly (e.g. a copy taken from the secret store).
    const o3 = await cli(['open', '--config', t.policyFile, '--domain', 'agent_memory', '--key', t.keyringOf('agent_memory'), oldFile]);
    assert.deepEqual(o3.stdout, before);
  });

  it('`open` refuses tampered input, another domain, and non-JWE input with exit 1 and no plaintext', async () => {
    const secret = Buffer.from('{"never":"print me"}');
    const jwe = (await write('/v1/memory/x', secret)).toString();
    const parts = jwe.split('.');
    parts[3] = (parts[3]![0] === 'A' ? 'B' : 'A') + parts[3]!.slice(1);
    for (const [domain, input] of [
      ['agent_memory', Buffer.from(parts.join('.'))],
      ['notes', Buffer.from(jwe)],
      ['agent_memory', Buffer.from('just text')],
    ] as const) {
      const r = await cli(['open', '--config', t.policyFile, '--domain', domain], input);
      assert.equal(r.code, 1, `${domain}: ${r.stderr}`);
      assert.match(r.stderr, /payload_rejected/);
      assert.equal(r.stdout.length, 0);
      assert.ok(!r.stderr.includes('print me'));
    }
  });

  it('`keys rotate` and `open` reject unknown domains as usage errors', async () => {
    assert.equal((await cli(['keys', 'rotate', '--config', t.policyFile, '--domain', 'nope'])).code, 2);
    assert.equal((await cli(['open', '--config', t.policyFile, '--domain', 'nope'], Buffer.from('x'))).code, 2);
    assert.equal((await cli(['open', '--config', t.policyFile], Buffer.from('x'))).code, 2);
  });

  it('`keys rotate` without --domain rotates every RETRIEVAL keyring', async () => {
    const r = await cli(['keys', 'rotate', '--config', t.policyFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /agent_memory: added key/);
    assert.match(r.stdout.toString(), /notes: added key \S+ \(2 keys\)/);
  });
});
