import type { DlpEntity } from '../entities.js';
import { isSecretPlaceholder } from '../placeholder.js';
import { hasContext, type DetectContext, type Detector, type Match } from '../detector.js';

/**
 * Cloud and registry credentials without a checksum, recognised by their fixed shape:
 *  - GOOGLE_API_KEY: `AIza` + 35 base64url characters;
 *  - NPM_TOKEN: `npm_` + 36 alphanumerics (granular and automation tokens);
 *  - AZURE_STORAGE_KEY: 64 random bytes in base64 (86 characters and `==`) as an `AccountKey=` in a
 *    connection string or next to an Azure/storage key name;
 *  - GCP_SERVICE_ACCOUNT: a service-account JSON key file, found by its `private_key_id` (40 hex
 *    digits); the PEM key in the same file is a PRIVATE_KEY finding of its own.
 */
const GOOGLE = /(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])/g;
const NPM = /(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])/g;
const AZURE = /(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])/g;
const AZURE_CONTEXT = /account[_ -]?key|azure|storage|shared[_ -]?key|\bsas\b/i;
const GCP_ID_TEXT = /"private_key_id"\s*:\s*"([0-9a-f]{40})"/g;
const GCP_KEY = /^private_key_id$/;

function push(re: RegExp, text: string, entity: DlpEntity, out: Match[], ok: (v: string, at: number) => boolean = () => true): void {
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (!isSecretPlaceholder(m[0]) && ok(m[0], m.index)) out.push({ start: m.index, end: m.index + m[0].length, entity });
  }
}

export const cloudKeysDetector: Detector = {
  name: 'cloud-keys',
  entities: ['GOOGLE_API_KEY', 'NPM_TOKEN', 'AZURE_STORAGE_KEY', 'GCP_SERVICE_ACCOUNT'],
  find(text: string, ctx: DetectContext, enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    if (text.length < 39) {
      return;
    }
    if (enabled.has('GOOGLE_API_KEY') && text.includes('AIza')) push(GOOGLE, text, 'GOOGLE_API_KEY', out);
    if (enabled.has('NPM_TOKEN') && text.includes('npm_')) push(NPM, text, 'NPM_TOKEN', out);
    if (enabled.has('AZURE_STORAGE_KEY') && text.length >= 88 && text.includes('==')) {
      push(AZURE, text, 'AZURE_STORAGE_KEY', out, (_v, at) => hasContext(text, at, ctx, AZURE_CONTEXT, 64));
    }
    if (enabled.has('GCP_SERVICE_ACCOUNT')) {
      if (ctx.key !== undefined && GCP_KEY.test(ctx.key) && /^[0-9a-f]{40}$/.test(text)) {
        out.push({ start: 0, end: text.length, entity: 'GCP_SERVICE_ACCOUNT' });
      } else if (text.includes('"private_key_id"')) {
        GCP_ID_TEXT.lastIndex = 0;
        let m: RegExpExecArray | null;
        while ((m = GCP_ID_TEXT.exec(text)) !== null) {
          const at = m.index + m[0].length - 41;
          out.push({ start: at, end: at + 40, entity: 'GCP_SERVICE_ACCOUNT' });
        }
      }
    }
  },
};
