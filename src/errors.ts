import type { ReasonCode } from './policy/reasons.js';

/**
 * Base of every error mesh-pep raises on purpose. `code` is a stable reason code that callers can
 * switch on and that maps to statuses through `policy/reasons.ts`; `message` is for operators' logs and
 * is never sent to a client.
 */
export class MeshError extends Error {
  readonly code: ReasonCode;
  constructor(code: ReasonCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A credential problem (401 family). */
export class CredentialError extends MeshError {}

/** A payload could not be protected, unprotected or scanned for its domain. */
export class PayloadError extends MeshError {}

/** A policy file (or other operator input) failed validation; carries every problem found. */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.problems = problems;
    this.name = 'ConfigError';
  }
}

export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  message: string;
  severity: 'error' | 'warning';
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.severity === 'warning' ? 'warning: ' : ''}${p.message}`;
}
