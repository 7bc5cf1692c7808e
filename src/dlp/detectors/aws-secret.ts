import type { DlpEntity } from '../entities.js';
import { isSecretPlaceholder } from '../placeholder.js';
import { hasContext, type DetectContext, type Detector, type Match } from '../detector.js';

/**
 * An AWS secret access key is 40 base64 characters with nothing vendor-specific in it, so alone it is
 * indistinguishable from any hash or id. It is a finding only next to its context: an access key id
 * within 200 characters, or a secret-ish name (`aws_secret_access_key`, `SecretAccessKey`, `secret_key`)
 * as the JSON/form field or just before it.
 */
const CANDIDATE = /(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/g;
const KEY_ID = /(?:AKIA|ASIA)[A-Z2-7]{16}/;
const SECRET_NAME = /secret|aws.{0,24}key|credential/i;
const NEAR = 200;

export const awsSecretDetector: Detector = {
  name: 'aws-secret',
  entities: ['AWS_SECRET_KEY'],
  find(text: string, ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    const keyNamed = ctx.key !== undefined && SECRET_NAME.test(ctx.key);
    if (!keyNamed && !SECRET_NAME.test(text) && !KEY_ID.test(text)) return;
    CANDIDATE.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = CANDIDATE.exec(text)) !== null) {
      const v = m[0];
      if (!/[A-Z]/.test(v) || !/[a-z]/.test(v) || !/[0-9]/.test(v) || isSecretPlaceholder(v)) continue;
      const s = m.index;
      const nearKeyId = KEY_ID.test(text.slice(Math.max(0, s - NEAR), Math.min(text.length, s + 40 + NEAR)));
      if (nearKeyId || hasContext(text, s, ctx, SECRET_NAME)) out.push({ start: s, end: s + 40, entity: 'AWS_SECRET_KEY' });
    }
  },
};
