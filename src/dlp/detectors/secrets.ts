import type { DlpEntity } from '../entities.js';
import { isSecretPlaceholder } from '../placeholder.js';
import { longRuns } from '../runs.js';
import type { DetectContext, Detector, Match } from '../detector.js';

/**
 * Vendor secrets with a recognisable prefix. Every pattern starts with a literal, has a lookbehind that
 * only lets it start at the beginning of a token, and uses bounded, non-nested repetition over a class
 * that excludes the next delimiter, so each start position costs a bounded amount of work.
 */
interface PrefixRule {
  entity: DlpEntity;
  re: RegExp;
  valid?: (value: string) => boolean;
}

function hasDigitAndLetter(v: string): boolean {
  return /[0-9]/.test(v) && /[A-Za-z]/.test(v);
}

function b64urlJson(segment: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A JWT's header and payload both decode to JSON objects, and the header names an algorithm. */
function jwtValid(value: string): boolean {
  const [h, p] = value.split('.', 2);
  const header = b64urlJson(h);
  return header !== undefined && typeof header.alg === 'string' && b64urlJson(p) !== undefined;
}

const RULES: readonly PrefixRule[] = [
  {
    entity: 'AWS_ACCESS_KEY',
    re: /(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA)[A-Z2-7]{16}(?![A-Za-z0-9])/g,
  },
  {
    entity: 'GITHUB_TOKEN',
    re: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,250})(?![A-Za-z0-9_])/g,
  },
  {
    entity: 'SLACK_TOKEN',
    re: /(?<![A-Za-z0-9])xox[abprs]-[0-9]{6,15}-[A-Za-z0-9-]{8,250}(?![A-Za-z0-9-])/g,
  },
  {
    entity: 'STRIPE_KEY',
    re: /(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}(?![A-Za-z0-9_])/g,
  },
  {
    entity: 'ANTHROPIC_KEY',
    re: /(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{20,250}(?![A-Za-z0-9_-])/g,
    valid: hasDigitAndLetter,
  },
  {
    entity: 'OPENAI_KEY',
    re: /(?<![A-Za-z0-9_-])sk-(?!ant-)[A-Za-z0-9_-]{20,250}(?![A-Za-z0-9_-])/g,
    valid: (v) => hasDigitAndLetter(v.slice(3)) && /[A-Z]/.test(v) && /[a-z]/.test(v.slice(3)),
  },
  {
    entity: 'JWT',
    re: /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{6,8000}\.eyJ[A-Za-z0-9_-]{6,16000}\.[A-Za-z0-9_-]{0,4000}(?![A-Za-z0-9_-])/g,
    valid: jwtValid,
  },
];

/**
 * Cheap gate: every key here is a run of 20+ base64 characters (an AWS key id is exactly 20),
 * except a JWT, whose header segment may be shorter but starts with `eyJ`.
 */
function mayHoldSecret(text: string): boolean {
  return longRuns(text).length > 0 || text.includes('eyJ');
}

export const secretsDetector: Detector = {
  name: 'secrets',
  entities: RULES.map((r) => r.entity),
  find(text: string, _ctx: DetectContext, enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    if (!mayHoldSecret(text)) return;
    for (const rule of RULES) {
      if (!enabled.has(rule.entity)) continue;
      const re = rule.re;
      re.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(text)) !== null) {
        const v = m[0];
        if (isSecretPlaceholder(v)) continue;
        if (rule.valid && !rule.valid(v)) continue;
        out.push({ start: m.index, end: m.index + v.length, entity: rule.entity });
      }
    }
  },
};
