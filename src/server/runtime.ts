import { FileAuditSink } from '../audit/file-sink.js';
import { DEFAULTS } from '../config/defaults.js';
import { BodyBudget } from '../envoy/ext-proc/body-buffer.js';
import type { AuditSink } from '../audit/record.js';
import { PolicyStore, type ReloadResult } from '../config/store.js';
import type { CompiledPolicy, IdentitySettings } from '../config/types.js';
import { formatProblem } from '../errors.js';
import { CredentialVerifier } from '../identity/verifier.js';
import { Pseudonymizer } from '../masking/pseudonym.js';
import type { CredentialSource, DecisionGuard } from '../policy/decide.js';
import { installSecurityGuards, type SecurityGuards } from '../policy/guards/install.js';
import type { VerifiedCredential } from '../identity/verifier.js';
import type { SharedIdentityPeer } from '../policy/guards/shared-identity.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { createMetrics, type Metrics } from '../telemetry/metrics.js';
import { createTracing, type Tracing } from '../telemetry/tracing.js';
import type { ServerContext } from './context.js';
import { ensureDevKeys } from './dev-keys.js';
import { readPseudonymKey } from './pseudonym-key.js';

export interface RuntimeOptions {
  configFile: string;
  /** Create missing key files (the bundled development policy does this on first start). */
  initDevKeys?: boolean;
  log?: Logger;
  metrics?: Metrics;
  tracing?: Tracing;
  /**
   * Where audit records go instead of this process's own file sink on `audit.file`: a cluster worker
   * relays them to the primary, which keeps the one chain (`audit/ipc-sink.ts`).
   */
  auditSink?: AuditSink;
  /** A cluster worker's link to the primary's shared-identity view (`policy/guards/shared-identity-ipc.ts`). */
  sharedIdentityPeer?: SharedIdentityPeer;
}

function maxTokenAge(p: CompiledPolicy): number {
  return Math.max(p.global.credentialRotationIntervalMs, ...p.domains.map((d) => d.maxTokenAgeMs));
}

/**
 * Everything one server process holds: the policy store, the credential verifier (rebuilt when the
 * identity settings change), the pseudonymiser, the audit sink, metrics and the logger.
 */
export class Runtime implements ServerContext {
  private verifier: CredentialVerifier;
  private identityKey: string;
  private readonly guardList: DecisionGuard[] = [];
  /** Trust zones, revocation and shared-identity guards (src/policy/guards). */
  security: SecurityGuards | undefined;
  draining = false;
  listening = false;
  /** One budget for the body bytes every ext_proc stream of this process holds (finding 10 of issue 17). */
  readonly bodyBudget = new BodyBudget(() => this.store.current.server?.maxInflightBodyBytes ?? DEFAULTS.maxInflightBodyBytes);

  private constructor(
    readonly store: PolicyStore,
    readonly audit: AuditSink,
    readonly metrics: Metrics,
    readonly log: Logger,
    readonly pseudonyms: Pseudonymizer,
    readonly tracing: Tracing,
  ) {
    const policy = store.current;
    this.identityKey = JSON.stringify(policy.identity);
    this.verifier = this.buildVerifier(policy.identity);
    store.onChange((next) => this.onPolicyChange(next));
  }

  static async create(opts: RuntimeOptions): Promise<Runtime> {
    const log = opts.log ?? createLogger();
    const metrics = opts.metrics ?? createMetrics();
    const { store, warnings } = await PolicyStore.open(opts.configFile);
    for (const w of warnings) log.warn(formatProblem(w));
    const policy = store.current;
    if (opts.initDevKeys) {
      const written = await ensureDevKeys(policy);
      if (written.length) log.info({ files: written }, 'created development keys');
    }
    const pseudonyms = new Pseudonymizer(await readPseudonymKey(policy.keys.pseudonymKeyFile));
    const audit = opts.auditSink ?? (await FileAuditSink.open(policy.audit, { metrics, log }));
    const rt = new Runtime(store, audit, metrics, log, pseudonyms, opts.tracing ?? createTracing());
    try {
      rt.security = await installSecurityGuards(rt, opts.sharedIdentityPeer);
    } catch (e) {
      await rt.close();
      throw e;
    }
    return rt;
  }

  policy(): CompiledPolicy {
    return this.store.current;
  }

  credentials(): CredentialSource & { keyIds(): string[] } {
    return this.verifier;
  }

  guards(): readonly DecisionGuard[] {
    return this.guardList;
  }

  addGuard(g: DecisionGuard): void {
    this.guardList.push(g);
  }

  /** Drops cached verified credentials (revocation); the current verifier is the only cache. */
  invalidateCredentials(pred: (c: VerifiedCredential) => boolean): void {
    this.verifier.invalidate(pred);
  }

  get ready(): boolean {
    return this.listening && !this.draining && this.audit.healthy;
  }

  async reload(): Promise<ReloadResult> {
    const r = await this.store.reload();
    await this.security?.refresh();
    this.recordReload(r);
    return r;
  }

  recordReload(r: ReloadResult): void {
    this.metrics.policyReloads.inc({ result: r.ok ? 'ok' : 'error' });
    if (r.ok) this.log.info({ policy_hash: this.store.current.hash }, 'policy loaded');
    else this.log.error({ errors: r.errors }, 'policy reload failed; the last good policy keeps serving');
  }

  private buildVerifier(identity: IdentitySettings): CredentialVerifier {
    return new CredentialVerifier(identity, {
      maxAgeMs: () => maxTokenAge(this.store.current),
      onCacheLookup: (hit) => this.metrics.credentialCache.inc({ result: hit ? 'hit' : 'miss' }),
      onJwksError: (err) => this.log.warn({ err: { message: err.message } }, 'issuer JWKS problem'),
    });
  }

  private onPolicyChange(next: CompiledPolicy): void {
    const key = JSON.stringify(next.identity);
    if (key !== this.identityKey) {
      const old = this.verifier;
      this.verifier = this.buildVerifier(next.identity);
      this.identityKey = key;
      old.close();
    }
  }

  async close(): Promise<void> {
    this.store.close();
    this.security?.close();
    this.verifier.close();
    await this.audit.close();
    await this.tracing.shutdown();
  }
}
