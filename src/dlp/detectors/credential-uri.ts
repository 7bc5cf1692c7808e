import type { DlpEntity } from '../entities.js';
import { isPlaceholder } from '../placeholder.js';
import { isWordChar, type DetectContext, type Detector, type Match } from '../detector.js';

/**
 * URIs with a password in the userinfo (`postgres://app:s3cret@db:5432/x`, `redis://:pw@cache`). Found
 * from each `://` with bounded scans for the scheme (≤ 32) and the authority (≤ 512). The finding is
 * scheme through host and port; the path stays. `${DB_PASSWORD}`, `<password>` or the bare word
 * `password` in the password position are templates, not findings.
 */
const TEMPLATE_PASSWORDS: ReadonlySet<string> = new Set(['password', 'passwd', 'pass', 'pwd', 'secret', 'pw']);

function isSchemeChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 43 || c === 46 || c === 45;
}

function endsAuthority(c: number): boolean {
  // / ? # whitespace quotes brackets backtick
  return c === 47 || c === 63 || c === 35 || c <= 32 || c === 34 || c === 39 || c === 60 || c === 62 || c === 96 || c === 41 || c === 93 || c === 44 || c === 59;
}

export const credentialUriDetector: Detector = {
  name: 'credential-uri',
  entities: ['CREDENTIAL_URI'],
  find(text: string, _ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    let sep = text.indexOf('://');
    let floor = 0;
    while (sep !== -1) {
      let s = sep;
      const limit = Math.max(floor, sep - 32);
      while (s > limit && isSchemeChar(text.charCodeAt(s - 1))) s--;
      // The scheme begins with a letter; skip leading punctuation picked up by the backwards scan.
      while (s < sep && !/[A-Za-z]/.test(text[s])) s++;
      const a = sep + 3;
      let e = a;
      const end = Math.min(text.length, a + 512);
      while (e < end && !endsAuthority(text.charCodeAt(e))) e++;
      const authority = text.slice(a, e);
      const at = authority.lastIndexOf('@');
      if (s < sep && !isWordChar(text, s - 1) && at > 0 && at < authority.length - 1) {
        const userinfo = authority.slice(0, at);
        const colon = userinfo.indexOf(':');
        const password = colon === -1 ? '' : userinfo.slice(colon + 1);
        if (password.length > 0 && !templated(password) && !isPlaceholder(userinfo)) {
          out.push({ start: s, end: e, entity: 'CREDENTIAL_URI' });
          floor = e;
        }
      }
      sep = text.indexOf('://', sep + 3);
    }
  },
};

function templated(password: string): boolean {
  return TEMPLATE_PASSWORDS.has(password.toLowerCase()) || password[0] === '$' || /^[*xX•.]+$/.test(password) || isPlaceholder(password);
}
