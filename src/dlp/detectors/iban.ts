import { ibanValid } from '../checksums.js';
import { IBAN_LENGTHS } from '../iban-lengths.js';
import type { DlpEntity } from '../entities.js';
import { isWordChar, type DetectContext, type Detector, type Match } from '../detector.js';

/**
 * IBANs, compact (`DE89370400440532013000`) or printed in groups of four (`DE89 3704 0044 0532 0130 00`).
 * The country's registered length decides how many characters to take, then mod-97 decides.
 */
const TRIGGER = /[A-Z]{2}[0-9]{2}/g;

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

export const ibanDetector: Detector = {
  name: 'iban',
  entities: ['IBAN'],
  find(text: string, _ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    const re = TRIGGER;
    re.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      const s = m.index;
      if (isWordChar(text, s - 1)) continue;
      const expected = IBAN_LENGTHS.get(m[0].slice(0, 2));
      if (expected === undefined) continue;
      let compact = '';
      let i = s;
      let sinceSpace = 0;
      while (i < text.length && compact.length < expected) {
        const c = text.charCodeAt(i);
        if (isAlnum(c)) {
          compact += text[i];
          sinceSpace++;
          i++;
        } else if (c === 32 && sinceSpace === 4 && i + 1 < text.length && isAlnum(text.charCodeAt(i + 1))) {
          sinceSpace = 0;
          i++;
        } else break;
      }
      if (compact.length !== expected || isWordChar(text, i)) continue;
      if (ibanValid(compact.toUpperCase())) {
        out.push({ start: s, end: i, entity: 'IBAN' });
        re.lastIndex = i;
      }
    }
  },
};
