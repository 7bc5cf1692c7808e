/**
 * `node dist/tools/envoy/ensure-cli.js`: finds or installs Envoy 1.40 and prints what will run, so the
 * Envoy suite's log always names its Envoy. Exit 1 with the reason when Envoy cannot be had.
 */
import { ensureEnvoy } from './binary.js';

try {
  const bin = await ensureEnvoy({ log: (line) => process.stderr.write(`envoy: ${line}\n`) });
  process.stdout.write(`envoy: ${bin.path}\nenvoy: ${bin.banner}\n`);
} catch (e) {
  process.stderr.write(`envoy: ${(e as Error).message}\nThe Envoy suite needs a real Envoy 1.40; it does not skip.\n`);
  process.exitCode = 1;
}
