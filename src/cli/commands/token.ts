import { parseArgs } from 'node:util';
import { loadPolicyFile } from '../../config/load.js';
import { mintPolicyToken } from '../../identity/dev-issuer.js';
import { UsageError, type CliCommand } from '../command.js';
import { configPath, parseDuration, required } from '../options.js';

export const command: CliCommand = {
  name: 'token',
  summary: 'mint a development credential (JWT) with the dev issuer key',
  help: `Usage: mesh-pep token --agent ID --role ROLE [--ttl 10m] [--attestation HASH | --attested]
                      [--spiffe URI] [--config FILE]

Prints a short-lived ES256 JWT signed with the development issuer key named by the policy
(keys.issuer_private_key_file; created by \`mesh-pep keys init\` or the first \`npm start\`).
  --agent ID         the agent id (sub)
  --role ROLE        the role claim (e.g. RETRIEVER, ORCHESTRATOR, EXECUTOR, ANALYST)
  --ttl DURATION     lifetime (default 10m; 500ms, 30s, 10m, 1h)
  --attestation H    attestation measurement claim, e.g. sha256:<hex>
  --attested         use the policy's first trusted measurement as the attestation claim
  --spiffe URI       bind the credential to a workload: spiffe://cluster.local/ns/<ns>/sa/<sa>`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        agent: { type: 'string' },
        role: { type: 'string' },
        ttl: { type: 'string', default: '10m' },
        attestation: { type: 'string' },
        attested: { type: 'boolean', default: false },
        spiffe: { type: 'string' },
      },
      strict: true,
    });
    const agentId = required(values.agent, '--agent');
    const role = required(values.role, '--role');
    const ttlMs = parseDuration(values.ttl!);
    const { policy } = await loadPolicyFile(configPath(values.config));
    let attestation = values.attestation;
    if (values.attested) {
      attestation = [...policy.trustedMeasurements][0];
      if (!attestation) throw new UsageError('--attested: the policy lists no attestation.trusted_measurements');
    }
    const token = await mintPolicyToken(policy, { agentId, role, ttlMs, attestation, spiffeId: values.spiffe });
    process.stdout.write(token + '\n');
    return 0;
  },
};
