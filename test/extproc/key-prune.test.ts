import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { keyCreatedAt, newOctKey, pruneKeys } from '../../src/protect/retrieval/keys.js';
import { EnvoyPeer } from '../support/envoy-peer.js';
import { boundMetadata, get, MemoryStore, put, startTestServer, type TestServer } from '../support/extproc-server.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const DAY = 86_400_000;

describe('keys rotate --prune-older-than: keyrings stop growing (issue 23, item 9)', () => {
  it('the kid carries the creation time; unstamped keys are never pruned; nothing else is', () => {
    const now = Date.UTC(2026, 11, 8, 1, 0, 0);
    const old = newOctKey(new Date(now - 40 * DAY));
    const recent = newOctKey(new Date(now - 2 * DAY));
    assert.equal(keyCreatedAt(old.kid), now - 40 * DAY);
    const manual = { ...newOctKey(), kid: 'imported-by-hand' };
    const { kept, pruned } = pruneKeys([old, manual, recent], now - 30 * DAY);
    assert.deepEqual(pruned, [old.kid]);
    assert.deepEqual(kept.map((k) => k.kid), [manual.kid, recent.kid]);
  });

  describe('against a running server', () => {
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

    it('removes keys older than the retention, keeps the rest, and ciphertext under a kept key still opens', async () => {
      const file = t.keyringOf('agent_memory');
      const ring = JSON.parse(await readFile(file, 'utf8')) as { keys: Array<{ kid: string }> };
      // A key from 40 days ago, listed last so it encrypts the next write.
      const ancient = newOctKey(new Date(Date.now() - 40 * DAY));
      await writeFile(file, JSON.stringify({ keys: [...ring.keys, ancient] }), { mode: 0o600 });
      await new Promise((r) => setTimeout(r, 1100)); // the server re-reads a changed keyring at most once a second
      await p.exchange(put('/v1/memory/ancient', Buffer.from('{"n":"under the old key"}'), 'application/json'), store.handle);
      const stored = store.objects.get('/v1/memory/ancient')!.body.toString();
      assert.equal(JSON.parse(Buffer.from(stored.split('.')[0]!, 'base64url').toString()).kid, ancient.kid);

      const r = await cli(['keys', 'rotate', '--config', t.policyFile, '--domain', 'agent_memory', '--prune-older-than', '30d']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`agent_memory: added key \\S+ \\(2 keys\\) .*removed 1 older than 30d: ${ancient.kid}`));
      const after = JSON.parse(await readFile(file, 'utf8')) as { keys: Array<{ kid: string }> };
      assert.deepEqual(after.keys.map((k) => k.kid).slice(0, 1), [ring.keys[0]!.kid], 'the recent key stays');
      assert.ok(!after.keys.some((k) => k.kid === ancient.kid));

      // What was encrypted under the pruned key no longer opens: refused, never passed on as ciphertext.
      await new Promise((r) => setTimeout(r, 1100));
      const read = await p.exchange(get('/v1/memory/ancient'), store.handle);
      assert.equal(read.kind, 'local');
      assert.equal(read.localReason, 'immediate_response', 'the response is refused');
      assert.ok(read.response.status >= 400);
      assert.ok(!read.response.body.toString().includes(stored), 'the ciphertext is not passed on either');
    });

    it('refuses a zero or malformed retention', async () => {
      for (const bad of ['0', 'soon', '-1d']) {
        const r = await cli(['keys', 'rotate', '--config', t.policyFile, '--prune-older-than', bad]);
        assert.notEqual(r.code, 0, bad);
      }
    });
  });
});
