import { isIPv6 } from 'node:net';
import type { DlpEntity } from '../entities.js';
import { isWordChar, type DetectContext, type Detector, type Match } from '../detector.js';

/**
 * IPv6 addresses: each maximal run of hex digits, colons and dots that contains a colon is read once
 * and handed to `net.isIPv6`. Times (`10:30:00`), MAC addresses and `std::vector` are not valid IPv6;
 * a lone `::` or `::1` carries no host information and is skipped.
 */
function isRunChar(c: number): boolean {
  return (c >= 48 && c <= 58) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102) || c === 46; // 0-9 : A-F a-f .
}

export const ipv6Detector: Detector = {
  name: 'ipv6',
  entities: ['IP_ADDRESS'],
  find(text: string, _ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    let colon = text.indexOf(':');
    let done = 0;
    while (colon !== -1) {
      if (colon >= done) {
        let s = colon;
        while (s > done && isRunChar(text.charCodeAt(s - 1))) s--;
        let e = colon + 1;
        while (e < text.length && isRunChar(text.charCodeAt(e))) e++;
        done = e;
        while (e > s && (text[e - 1] === '.' || text[e - 1] === ':') && text.slice(e - 2, e) !== '::') e--;
        const run = text.slice(s, e);
        if (run.length >= 3 && run.length <= 45 && !isWordChar(text, s - 1) && !isWordChar(text, done) && plausible(run) && isIPv6(run)) {
          out.push({ start: s, end: e, entity: 'IP_ADDRESS' });
        }
      }
      colon = text.indexOf(':', Math.max(colon + 1, done));
    }
  },
};

function plausible(run: string): boolean {
  // Cheap reject first: an address has at least two colons (`10:30` has one).
  if (run.indexOf(':') === run.lastIndexOf(':')) return false;
  const groups = run.split(':').filter((g) => g.length > 0);
  if (groups.length < 2) return false;
  if (!/[0-9]/.test(run)) return false;
  return run.includes('::') || groups.length >= 7;
}
