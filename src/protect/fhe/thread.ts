import { parentPort } from 'node:worker_threads';
import { MeshError } from '../../errors.js';
import { runFheJob, type FheJob } from './job.js';

/**
 * The SEAL thread's entry (`pool.ts`): runs one job per message, in order, and answers with the result
 * or the error's reason code and message (never a value of the body). The WASM and the key caches
 * live here, loaded on the first job.
 */
export interface JobMessage {
  id: number;
  job: FheJob;
}

export type JobAnswer =
  | { id: number; ok: true; result: { body: Uint8Array; contentType: string; headers: Record<string, string> } | undefined }
  | { id: number; ok: false; code: string | undefined; message: string };

const port = parentPort;
if (port) {
  port.on('message', (m: JobMessage) => {
    void runFheJob(m.job).then(
      (result) => {
        const answer: JobAnswer = { id: m.id, ok: true, result: result ? { body: result.body, contentType: result.contentType, headers: { ...result.headers } } : undefined };
        // The protected body moves to the main thread instead of being copied.
        const transfer = result && result.body.byteOffset === 0 && result.body.byteLength === result.body.buffer.byteLength ? [result.body.buffer as ArrayBuffer] : [];
        port.postMessage(answer, transfer);
      },
      (e: unknown) => {
        const answer: JobAnswer = { id: m.id, ok: false, code: e instanceof MeshError ? e.code : undefined, message: e instanceof Error ? e.message : 'FHE job failed' };
        port.postMessage(answer);
      },
    );
  });
}
