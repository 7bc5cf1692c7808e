import type { DlpSettings } from '../config/types.js';
import { ScanBudget } from './budget.js';
import type { Detector } from './detector.js';
import { awsSecretDetector } from './detectors/aws-secret.js';
import { canaryDetector, compileCanaries } from './detectors/canary.js';
import { cloudKeysDetector } from './detectors/cloud-keys.js';
import { credentialUriDetector } from './detectors/credential-uri.js';
import { cryptoKeyDetector } from './detectors/crypto-key.js';
import { emailDetector } from './detectors/email.js';
import { ibanDetector } from './detectors/iban.js';
import { ipv6Detector } from './detectors/ipv6.js';
import { numericDetector } from './detectors/numeric.js';
import { privateKeyDetector } from './detectors/private-key.js';
import { secretsDetector } from './detectors/secrets.js';
import { DLP_ENTITIES, isDlpEntity, type DlpEntity } from './entities.js';
import { scanBody } from './layers/body.js';
import type { ScanState } from './layers/state.js';

export interface DlpResult {
  /** What was done: 'pass' = nothing found; 'block' also when a redact/block scan was cut short. */
  action: 'pass' | 'redact' | 'block' | 'report';
  /** Entity name → count. Never values. */
  findings: Readonly<Record<string, number>>;
  /**
   * Where each finding was, as `ENTITY@layers` (`STRIPE_KEY@json>base64`, `EMAIL@text`), sorted:
   * names only, so a verdict can say what caused it without carrying a value.
   */
  layers: readonly string[];
  /** The redacted body when action === 'redact' (same encoding as the input: gzip stays gzip), else undefined. */
  body: Uint8Array | undefined;
  /** The time or size budget was hit and part of the body went unscanned. */
  truncated: boolean;
}

export interface DlpScanner {
  scan(body: Uint8Array, contentType: string | undefined): DlpResult;
}

export interface DlpOptions {
  /** Time budget per body (default 50 ms). */
  budgetMs?: number;
  /** Largest body (after gzip inflation) scanned in full (default 4 MiB). */
  maxBytes?: number;
}

export const DEFAULT_BUDGET_MS = 50;
export const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;

/** Detectors in the order they run; the cheap, selective ones first. */
const BUILT_IN: readonly Detector[] = [
  privateKeyDetector,
  secretsDetector,
  awsSecretDetector,
  cloudKeysDetector,
  cryptoKeyDetector,
  credentialUriDetector,
  emailDetector,
  ibanDetector,
  numericDetector,
  ipv6Detector,
];

/**
 * Every problem with a domain's `dlp` settings, as messages naming the setting (`dlp.entities: …`,
 * `dlp.canaries[2]: …`), without the canary text. For the policy validator: the same rules
 * `compileDlp` enforces, so a policy that validates also loads.
 */
export function dlpSettingsProblems(settings: DlpSettings): string[] {
  const problems: string[] = [];
  for (const name of settings.entities) {
    if (!isDlpEntity(name)) problems.push(`dlp.entities: unknown entity ${JSON.stringify(name)} (known: ${DLP_ENTITIES.join(', ')})`);
  }
  settings.canaries.forEach((pattern, i) => {
    try {
      compileCanaries([pattern]);
    } catch (e) {
      problems.push((e as Error).message.replace('dlp.canaries[0]', `dlp.canaries[${i}]`));
    }
  });
  return problems;
}

/**
 * Compiles a domain's `dlp` settings once per policy load. Throws an Error naming the setting for an
 * unknown entity or an invalid canary (the policy loader turns it into a validation error).
 *
 * Budget semantics (fail closed): when a scan runs out of time or the body exceeds `maxBytes`, the
 * result has `truncated: true`; with action `block` or `redact` its action is then 'block' (a partly
 * redacted body cannot be trusted), with `report` it is 'report' or 'pass' with the counts found so far.
 */
export function compileDlp(settings: DlpSettings, opts: DlpOptions = {}): DlpScanner {
  const budgetMs = opts.budgetMs ?? DEFAULT_BUDGET_MS;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!(budgetMs >= 0) || !(maxBytes > 0)) throw new Error('dlp: budgetMs and maxBytes must be positive numbers');
  for (const name of settings.entities) {
    if (!isDlpEntity(name)) throw new Error(`dlp.entities: unknown entity ${JSON.stringify(name)} (known: ${DLP_ENTITIES.join(', ')})`);
  }
  const enabled: ReadonlySet<DlpEntity> = new Set(settings.entities.length === 0 ? DLP_ENTITIES : (settings.entities as DlpEntity[]));
  const canaries = compileCanaries(settings.canaries);
  const action = settings.action;
  // Shortest text worth scanning: 6 for the built-ins (`a@b.co`), less if a canary can match shorter.
  const builtIns = BUILT_IN.filter((d) => d.entities.some((e) => enabled.has(e)));
  const canaryOn = canaries.length > 0 && enabled.has('CANARY');
  const minLength = enabled.has('CANARY') ? Math.min(6, ...canaries.map((c) => Math.max(1, c.prefix.length))) : 6;

  return {
    scan(body: Uint8Array, contentType: string | undefined): DlpResult {
      const budget = new ScanBudget(budgetMs, maxBytes * 4);
      // The canary detector polls this scan's budget between its windows, so it is bound per scan.
      const detectors = canaryOn ? [...builtIns, canaryDetector(canaries, () => budget.over())] : builtIns;
      const state: ScanState = { detectors, enabled, budget, minLength, trail: [] };
      const scanned = scanBody(state, body, contentType, maxBytes);
      const { redacted } = scanned;
      const counts: Record<string, number> = {};
      for (const [key, n] of Object.entries(scanned.counts)) {
        const entity = key.slice(0, key.indexOf('@'));
        counts[entity] = (counts[entity] ?? 0) + n;
      }
      const truncated = scanned.truncated;
      // A scan cut short by the time or size budget blocks in redact/block domains: the verdict names
      // that cause too, so no block is left without a reason.
      const where = Object.keys(scanned.counts).sort();
      if (truncated) where.push(body.length > maxBytes ? 'SCAN_INCOMPLETE@size' : 'SCAN_INCOMPLETE@budget');
      const layers = Object.freeze(where);
      const findings = Object.freeze(counts);
      const found = Object.keys(counts).length > 0;
      if (truncated && action !== 'report') return { action: 'block', findings, body: undefined, truncated, layers };
      if (!found) return { action: 'pass', findings, body: undefined, truncated, layers };
      if (action === 'redact') {
        // Findings without a rewritten body cannot happen by construction; if it ever did, fail closed.
        return redacted === undefined ? { action: 'block', findings, body: undefined, truncated, layers } : { action: 'redact', findings, body: redacted, truncated, layers };
      }
      return { action, findings, body: undefined, truncated, layers };
    },
  };
}
