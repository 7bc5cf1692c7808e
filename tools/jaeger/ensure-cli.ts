/**
 * `node dist/tools/jaeger/ensure-cli.js`: finds or builds Jaeger v1.75.0 (see binary.ts) and prints what
 * will run, so CI's log names its Jaeger. Exit 1 with the reason when Jaeger cannot be had.
 */
import { ensureJaeger } from './binary.js';

try {
  const bin = await ensureJaeger({ log: (line) => process.stderr.write(`jaeger: ${line}\n`) });
  process.stdout.write(`jaeger: ${bin.path}\njaeger: ${bin.version}\n`);
} catch (e) {
  process.stderr.write(`jaeger: ${(e as Error).message}\nThe tracing tests and npm run demo:envoy need a real Jaeger; they do not skip.\n`);
  process.exitCode = 1;
}
