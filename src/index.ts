/**
 * The package's public surface. Servers and tools use the CLI; programs embed these.
 */
export { MeshSecurityController, SecurityError } from './controller/mesh-security-controller.js';
export type { AgentRole, ControllerOptions, ExchangeRequest, SecureExchangeResult, SecurityPolicy } from './controller/mesh-security-controller.js';
export { parsePolicy, loadPolicyFile } from './config/load.js';
export type { CompiledPolicy, DomainPolicy, Tier, AuditLevel } from './config/types.js';
export { decide } from './policy/decide.js';
export type { Decision, AllowDecision, DenyDecision, DecisionStep } from './policy/decision.js';
export type { RequestAttributes } from './policy/request.js';
export { REASONS, REASON_CODES } from './policy/reasons.js';
export type { ReasonCode } from './policy/reasons.js';
export { MeshError, CredentialError, PayloadError, ConfigError } from './errors.js';
export { startServer } from './server/start.js';
export type { StartOptions, RunningServer } from './server/start.js';
export { FileAuditSink } from './audit/file-sink.js';
export { verifyAuditChain } from './audit/verify.js';
export type { AuditEvent, AuditRecord, AuditSink } from './audit/record.js';
export { tierModule } from './protect/registry.js';
export type { TierHandler, PayloadContext, PayloadResult } from './protect/tier-handler.js';
export { FheAnalyst } from './protect/fhe/index.js';
export { openPartyBundle, reconstruct, sumShares, combineSums, openEnvelope } from './protect/computation/index.js';
