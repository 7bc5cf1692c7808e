import type { DlpEntity } from '../entities.js';
import { isSecretPlaceholder } from '../placeholder.js';
import { B64STD_CHARS, runsWithin } from '../runs.js';
import { hasContext, type DetectContext, type Detector, type Match } from '../detector.js';

/**
 * An AWS secret access key is 40 base64 characters with nothing vendor-specific in it, so alone it is
 * indistinguishable from any hash or id. It is a finding only next to its context: an access key id
 * within 200 characters, or a secret-ish name (`aws_secret_access_key`, `SecretAccessKey`, `secret_key`)
 * as the JSON/form field or just before it.
 */
const KEY_ID = /(?:AKIA|ASIA)[A-Z2-7]{16}/;
const SECRET_NAME = /secret|aws.{0,24}key|credential/i;
const NEAR = 200;

export const awsSecretDetector: Detector = {
  name: 'aws-secret',
  entities: ['AWS_SECRET_KEY'],
  find(text: string, ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    // Candidates first: 40-character tokens are rare in ordinary text, the context checks are not free.
    for (const [s, e] of runsWithin(text, B64STD_CHARS, 40, 40)) {
      if (text.charCodeAt(e) === 61 /* = */) continue; // padded base64 of something else
      const v = text.slice(s, e);
      if (!/[A-Z]/.test(v) || !/[a-z]/.test(v) || !/[0-9]/.test(v) || isSecretPlaceholder(v)) continue;
      const nearKeyId = KEY_ID.test(text.slice(Math.max(0, s - NEAR), Math.min(text.length, e + NEAR)));
      if (nearKeyId || hasContext(text, s, ctx, SECRET_NAME)) out.push({ start: s, end: e, entity: 'AWS_SECRET_KEY' });
    }
  },
};
