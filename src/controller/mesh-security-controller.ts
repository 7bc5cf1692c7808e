import { createHash } from 'node:crypto';
import type { AuditEvent, AuditSink } from '../audit/record.js';
import { auditTarget } from '../audit/target.js';
import { compilePolicy } from '../config/compile.js';
import type { RawDomain, RawPolicy } from '../config/raw.js';
import type { AuditLevel, CompiledPolicy, Tier } from '../config/types.js';
import { MeshError } from '../errors.js';
import { CredentialVerifier } from '../identity/verifier.js';
import { Pseudonymizer } from '../masking/pseudonym.js';
import { TOPOLOGY_REQUEST_HEADERS } from '../masking/topology-headers.js';
import { decide } from '../policy/decide.js';
import type { ReasonCode } from '../policy/reasons.js';
import { tierModule } from '../protect/registry.js';

/**
 * The blueprint's `MeshSecurityController`, for agents that are not behind Envoy. Same decision core,
 * same tier handlers and audit format as the Check/ext_proc path; the difference from the blueprint's
 * sketch is that the caller's identity is a verified credential, never claims the caller asserts.
 */
export type AgentRole = string;

export interface SecurityPolicy {
  tier: Tier;
  allowedRoles: AgentRole[];
  metadataMasking: boolean;
  maxTokenAgeMs: number;
  auditLevel: AuditLevel;
  attestationRequired?: boolean;
}

export interface ExchangeRequest {
  /** The calling agent's short-lived credential (a JWT from the configured issuer). */
  credential: string;
  /** The caller's workload identity (SPIFFE URI) when known; required when the credential is bound. */
  sourcePrincipal?: string;
  /** The callee, as a URL or `host/path`. */
  target: string;
  payload: string | Uint8Array;
  contentType?: string;
  metadata: Record<string, string>;
  timestamp?: number;
}

export interface SecureExchangeResult {
  status: 'AUTHORIZED';
  decisionId: string;
  domain: string;
  tier: Tier;
  role: string;
  /** Agent id, or its pseudonym in masking domains. */
  agent: string;
  payload: Uint8Array;
  contentType: string;
  metadata: Record<string, string>;
}

/** A refused exchange; `code` is one of the contract's reason codes. */
export class SecurityError extends MeshError {}

export interface ControllerOptions {
  identity: {
    issuer: string;
    audiences: string[];
    jwksFile?: string;
    jwksUri?: string;
    clockSkewMs?: number;
    roleClaim?: string;
    attestationClaim?: string;
    spiffeClaim?: string;
  };
  /** Folder of domain keyrings (`<dir>/<domain>.jwks.json`), as in the policy file. */
  keysDir: string;
  trustedMeasurements?: string[];
  /** At least 32 random bytes; pseudonyms in masking domains are keyed with it. */
  pseudonymKey: Uint8Array;
  credentialRotationIntervalMs?: number;
}

const TOPOLOGY_KEYS = new Set(TOPOLOGY_REQUEST_HEADERS.flatMap((h) => [h, h.replace(/^x-/, '')]).map(normalizeKey));

function normalizeKey(k: string): string {
  return k.toLowerCase().replace(/_/g, '-');
}

export class MeshSecurityController {
  private readonly raw = new Map<string, RawDomain>();
  private compiled: CompiledPolicy | undefined;
  private verifier: CredentialVerifier | undefined;
  private readonly pseudonyms: Pseudonymizer;

  constructor(
    private readonly auditSink: AuditSink,
    private readonly options: ControllerOptions,
  ) {
    this.pseudonyms = new Pseudonymizer(options.pseudonymKey);
  }

  /** Registers (or replaces) the classification policy of a data domain. */
  registerPolicy(domain: string, policy: SecurityPolicy): void {
    if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/i.test(domain)) throw new TypeError(`invalid domain name "${domain}"`);
    if (!['RETRIEVAL', 'COMPUTATION', 'FHE'].includes(policy.tier)) throw new TypeError(`invalid tier "${policy.tier}"`);
    if (!policy.allowedRoles.length) throw new TypeError('allowedRoles must not be empty');
    if (!Number.isInteger(policy.maxTokenAgeMs) || policy.maxTokenAgeMs < 1000) throw new TypeError('maxTokenAgeMs must be a whole number ≥ 1000');
    this.raw.set(domain, {
      name: domain,
      tier: policy.tier,
      allowed_roles: [...policy.allowedRoles],
      metadata_masking: policy.metadataMasking,
      audit_level: policy.auditLevel,
      max_token_age_ms: policy.maxTokenAgeMs,
      attestation_required: policy.attestationRequired ?? false,
    });
    this.compiled = undefined;
  }

  private lastIdentity: string | undefined;

  private policy(): CompiledPolicy {
    if (!this.compiled) {
      const o = this.options;
      const raw: RawPolicy = {
        security_mesh: {
          global: { credential_rotation_interval_ms: o.credentialRotationIntervalMs ?? 600_000 },
          identity: {
            issuer: o.identity.issuer,
            audiences: o.identity.audiences,
            ...(o.identity.jwksUri ? { jwks_uri: o.identity.jwksUri } : { jwks_file: o.identity.jwksFile }),
            clock_skew_ms: o.identity.clockSkewMs ?? 30_000,
            role_claim: o.identity.roleClaim,
            attestation_claim: o.identity.attestationClaim,
            spiffe_claim: o.identity.spiffeClaim,
          },
          attestation: { trusted_measurements: o.trustedMeasurements ?? [] },
          keys: { dir: o.keysDir },
          domains: [...this.raw.values()],
        },
      };
      // compilePolicy resolves relative paths against the source's folder: use the cwd.
      const compiled = compilePolicy(JSON.parse(JSON.stringify(raw)) as RawPolicy, `${process.cwd()}/controller`, 'library');
      const identity = JSON.stringify(compiled.identity);
      this.compiled = compiled;
      if (identity !== this.lastIdentity || !this.verifier) {
        this.lastIdentity = identity;
        this.verifier?.close();
        this.verifier = new CredentialVerifier(compiled.identity, {
          maxAgeMs: () => Math.max(...(this.compiled?.domains.map((d) => d.maxTokenAgeMs) ?? [600_000])),
        });
      }
    }
    return this.compiled;
  }

  /** Removes topology-revealing metadata (the blueprint's keys and their header forms). */
  sanitizeMetadata(raw: Record<string, string>): Record<string, string> {
    const safe: Record<string, string> = {};
    for (const [k, v] of Object.entries(raw)) {
      const n = normalizeKey(k);
      if (TOPOLOGY_KEYS.has(n) || n.startsWith('x-agent-') || n.startsWith('x-mesh-') || n === 'authorization') continue;
      safe[k] = v;
    }
    return safe;
  }

  /** Authorises, masks, protects by tier and audits one exchange; throws SecurityError on deny. */
  async validateExchange(domain: string, request: ExchangeRequest): Promise<SecureExchangeResult> {
    const policy = this.policy();
    const url = new URL(/^[a-z]+:\/\//i.test(request.target) ? request.target : `mesh://${request.target}`);
    const headers = new Map<string, string>();
    for (const [k, v] of Object.entries(request.metadata)) headers.set(normalizeKey(k), v);
    headers.set('authorization', `Bearer ${request.credential}`);
    const req = {
      method: 'POST',
      path: url.pathname + url.search,
      host: url.hostname.toLowerCase(),
      headers,
      sourcePrincipal: request.sourcePrincipal,
      contextExtensions: { domain },
      traceId: undefined,
    };
    const decision = await decide(req, { policy, credentials: this.verifier!, pseudonyms: this.pseudonyms });
    const d = decision.domain ? policy.domainsByName.get(decision.domain) : undefined;
    const target = auditTarget(req.host, req.path, d?.metadataMasking ? { key: this.pseudonyms.keyFor(d.name) } : undefined);
    const base: Omit<AuditEvent, 'event' | 'decision' | 'reason'> = {
      decision_id: decision.decisionId,
      domain: decision.domain ?? null,
      tier: decision.tier ?? null,
      agent: decision.agent ?? null,
      role: decision.role ?? null,
      target,
      trace_id: null,
      audit_level: decision.auditLevel ?? null,
    };
    const durable = (decision.auditLevel ?? 'FULL_MESH') === 'FULL_MESH';
    if (decision.kind === 'deny' || !d) {
      await this.auditSink.record({ ...base, event: 'authz.check', decision: 'deny', reason: decision.reason }, { durable: false }).catch(() => undefined);
      throw new SecurityError(decision.reason as ReasonCode, `exchange denied: ${decision.reason}`);
    }
    const body = typeof request.payload === 'string' ? new TextEncoder().encode(request.payload) : request.payload;
    const handler = (await tierModule(d.tier)).handler;
    const out = await handler.protect(body, { policy, domain: d, contentType: request.contentType, direction: 'request' });
    try {
      await this.auditSink.record({ ...base, event: 'authz.check', decision: 'allow', reason: 'ok' }, { durable });
      await this.auditSink.record(
        {
          ...base,
          event: 'extproc.request_body',
          decision: 'transform',
          reason: 'ok',
          payload_sha256: createHash('sha256').update(body).digest('hex'),
          payload_bytes: body.length,
        },
        { durable },
      );
    } catch (e) {
      throw new SecurityError('audit_unavailable', `audit record failed: ${(e as Error).message}`);
    }
    return {
      status: 'AUTHORIZED',
      decisionId: decision.decisionId,
      domain: d.name,
      tier: d.tier,
      role: decision.role!,
      agent: decision.agent!,
      payload: out.body,
      contentType: out.contentType,
      metadata: d.metadataMasking ? this.sanitizeMetadata(request.metadata) : { ...request.metadata },
    };
  }

  close(): void {
    this.verifier?.close();
  }
}
