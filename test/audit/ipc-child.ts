import { IpcAuditSink, type AuditChannel } from '../../src/audit/ipc-sink.js';
import { checkEvent } from './fixtures.js';

/**
 * The worker half of test/audit/ipc.test.ts, in its own process so the records cross a real IPC
 * channel. Commands come from the parent; every command gets one `{ test: 'result' }` back.
 */
type Command =
  | { test: 'record'; from: number; count: number; durable: boolean }
  | { test: 'start-pending'; count: number }
  | { test: 'health' }
  | { test: 'close' };

const sink = new IpcAuditSink(process as unknown as AuditChannel);
let pending: Promise<void>[] = [];

// Once the parent (the "primary") cuts the channel, report on stdout what became of the records that
// were waiting, and of one recorded afterwards, then leave.
process.once('disconnect', () => {
  void (async () => {
    const settled = await Promise.allSettled(pending);
    const later = await sink.record(checkEvent(99), { durable: false }).then(
      () => 'accepted',
      (e: { code?: string }) => e.code,
    );
    process.stdout.write(
      JSON.stringify({ waiting: settled.map((s) => (s.status === 'rejected' ? (s.reason as { code?: string }).code : 'written')), later, healthy: sink.healthy }) + '\n',
    );
    process.exit(0);
  })();
});

process.on('message', (m: Command) => {
  if ((m as { test?: string })?.test === undefined) return;
  void run(m).then((result) => process.send?.({ test: 'result', ...result }));
});

async function run(m: Command): Promise<Record<string, unknown>> {
  switch (m.test) {
    case 'record': {
      // Concurrent calls, as concurrent Checks would make them: they share batches.
      const settled = await Promise.allSettled(
        Array.from({ length: m.count }, (_, i) => sink.record(checkEvent(m.from + i), { durable: m.durable })),
      );
      return {
        ok: settled.filter((s) => s.status === 'fulfilled').length,
        errors: settled.flatMap((s) => (s.status === 'rejected' ? [`${(s.reason as { code?: string }).code}: ${(s.reason as Error).message}`] : [])),
        healthy: sink.healthy,
      };
    }
    case 'start-pending':
      pending = Array.from({ length: m.count }, (_, i) => sink.record(checkEvent(500 + i), { durable: true }));
      return { started: m.count };
    case 'health':
      return { healthy: sink.healthy };
    case 'close':
      await sink.close();
      return { closed: true };
  }
}
