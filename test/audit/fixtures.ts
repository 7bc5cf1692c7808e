import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditSettings } from '../../src/config/types.js';
import type { AuditEvent } from '../../src/audit/record.js';

/** A realistic Check event as the decision core produces it. */
export function checkEvent(i: number, over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    event: 'authz.check',
    decision_id: `dec-${i.toString().padStart(6, '0')}`,
    domain: 'RETRIEVAL',
    tier: 'RETRIEVAL',
    decision: i % 7 === 0 ? 'deny' : 'allow',
    reason: i % 7 === 0 ? 'role_not_allowed' : 'ok',
    agent: `spiffe://mesh.local/ns/agents/sa/agent-${i % 5}`,
    role: 'retriever',
    target: 'kb.internal/v1/search',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    audit_level: 'FULL_MESH',
    ...over,
  };
}

export async function tempAudit(over: Partial<AuditSettings> = {}): Promise<{ dir: string; settings: AuditSettings; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-pep-audit-'));
  return {
    dir,
    settings: { file: join(dir, 'audit', 'audit.jsonl'), maxFileBytes: 10 * 1024 * 1024, groupCommitMs: 2, ...over },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Reads one sample of a Prometheus text exposition (first series with that name and label text). */
export function sample(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (line.slice(0, sp) === name) return Number(line.slice(sp + 1));
  }
  return undefined;
}
