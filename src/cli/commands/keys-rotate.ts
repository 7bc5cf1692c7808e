import { parseArgs } from 'node:util';
import { loadPolicyFile } from '../../config/load.js';
import { rotateOctKeyring } from '../../protect/retrieval/keys.js';
import { UsageError, type CliCommand } from '../command.js';
import { configPath, parseDuration } from '../options.js';

export const command: CliCommand = {
  name: 'keys rotate',
  summary: 'append a new encryption key to each RETRIEVAL keyring (old keys stay for reading)',
  help: `Usage: mesh-pep keys rotate [--config FILE] [--domain DOMAIN] [--prune-older-than DURATION]

Appends a freshly generated 256-bit key (A256KW) to the keyring of every RETRIEVAL domain in the policy,
or only DOMAIN's. The new key encrypts from then on; every earlier key stays listed so ciphertext
written under it still opens. Files are replaced atomically (mode 0600). A running server picks the
new key up within a second (keyrings are re-read when the file changes).

--prune-older-than DURATION (e.g. 720h, 30d) also removes keys created longer ago than that (their kid
carries the creation time; the new key always stays). Set it to at least the longest time anything
encrypted under a key is kept: ciphertext whose key was removed no longer opens.

Run it every global.credential_rotation_interval_ms, e.g. from cron or a Kubernetes CronJob
(docs/ext-proc.md; the Helm chart's keys.rotation). Keys are only rotated here when mesh-pep manages them; keyrings mounted from a
secret manager are rotated there, by appending a key to the JWK Set.`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { config: { type: 'string', short: 'c' }, domain: { type: 'string', short: 'd' }, 'prune-older-than': { type: 'string' } },
      strict: true,
    });
    const pruneText = values['prune-older-than'];
    const pruneMs = pruneText === undefined ? undefined : parseDuration(pruneText);
    if (pruneMs !== undefined && pruneMs <= 0) throw new UsageError('--prune-older-than must be longer than 0');
    const { policy } = await loadPolicyFile(configPath(values.config));
    let domains = policy.domains.filter((d) => d.tier === 'RETRIEVAL');
    if (values.domain !== undefined) {
      const d = policy.domainsByName.get(values.domain);
      if (!d) throw new UsageError(`domain "${values.domain}" is not in ${policy.source}`);
      if (d.tier !== 'RETRIEVAL') throw new UsageError(`domain "${values.domain}" is ${d.tier}; keys rotate handles RETRIEVAL keyrings`);
      domains = [d];
    }
    if (domains.length === 0) {
      process.stdout.write('no RETRIEVAL domains in the policy\n');
      return 0;
    }
    for (const d of domains) {
      const { kid, keys, pruned } = await rotateOctKeyring(d.keyringFile, new Date(), pruneMs);
      const removed = pruned.length > 0 ? `, removed ${pruned.length} older than ${pruneText ?? ''}: ${pruned.join(' ')}` : '';
      process.stdout.write(`${d.name}: added key ${kid} (${keys} keys) to ${d.keyringFile}${removed}\n`);
    }
    return 0;
  },
};
