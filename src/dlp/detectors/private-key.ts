import type { DlpEntity } from '../entities.js';
import type { DetectContext, Detector, Match } from '../detector.js';
import { isSecretPlaceholder } from '../placeholder.js';

/**
 * PEM private key blocks (`-----BEGIN [RSA|EC|OPENSSH|ENCRYPTED|…] PRIVATE KEY-----` … `-----END …`).
 * A header without its END line is still a leak: the finding then runs over the base64 body that
 * follows it. The position of the next END line is searched once and reused, so a body made of
 * thousands of BEGIN lines costs one pass.
 */
const BEGIN = /-----BEGIN [A-Z0-9]{0,20} ?[A-Z0-9]{0,20} ?PRIVATE KEY-----/g;
const MAX_BLOCK = 64 * 1024;

function isBodyChar(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47 || c === 61 ||
    c === 10 || c === 13 || c === 32 || c === 9 || c === 58 || c === 44 || c === 45; // base64, whitespace, "Proc-Type:" headers
}

/**
 * Documentation shows PEM blocks with a stand-in body (`...`, `<your key here>`, `MIIE…`, `XXXX`): the
 * smallest real private key (Ed25519, PKCS#8) has 64 base64 characters of key material, so a body with
 * fewer, or one that is a placeholder, is not a key. An unterminated header with no body is still one
 * (the key may follow in the next chunk or field).
 */
function placeholderBody(region: string): boolean {
  const end = region.indexOf('-----END ');
  const body = end === -1 ? region : region.slice(0, end);
  if (end === -1 && body.trim() === '') return false;
  const b64 = body.replace(/^[A-Za-z-]+:.*$/gm, '').replace(/[^A-Za-z0-9+/=]/g, '');
  return b64.length < 64 || isSecretPlaceholder(body.replace(/\s+/g, '')) || /\.\.\.|…|<[^>]*>/.test(body);
}

export const privateKeyDetector: Detector = {
  name: 'private-key',
  entities: ['PRIVATE_KEY'],
  find(text: string, _ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    if (!text.includes('PRIVATE KEY-----')) return;
    BEGIN.lastIndex = 0;
    let nextEnd = -2; // -2: not searched yet; -1: none left
    let m: RegExpExecArray | null;
    while ((m = BEGIN.exec(text)) !== null) {
      const s = m.index;
      const bodyStart = s + m[0].length;
      if (nextEnd !== -1 && nextEnd < bodyStart) nextEnd = text.indexOf('-----END ', bodyStart);
      let e: number;
      if (nextEnd !== -1 && nextEnd - s <= MAX_BLOCK) {
        const close = text.indexOf('-----', nextEnd + 9);
        e = close === -1 ? Math.min(text.length, nextEnd + 9) : close + 5;
      } else {
        // Unterminated: take the key material that follows (it stops at the next non-base64 character).
        e = bodyStart;
        const limit = Math.min(text.length, bodyStart + MAX_BLOCK);
        while (e < limit && isBodyChar(text.charCodeAt(e)) && !text.startsWith('-----', e)) e++;
        while (e > bodyStart && /\s/.test(text[e - 1])) e--;
      }
      if (!placeholderBody(text.slice(bodyStart, e))) out.push({ start: s, end: e, entity: 'PRIVATE_KEY' });
      BEGIN.lastIndex = Math.max(e, s + 1);
    }
  },
};
