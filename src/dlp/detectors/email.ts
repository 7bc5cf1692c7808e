import type { DlpEntity } from '../entities.js';
import { isPlaceholder } from '../placeholder.js';
import type { DetectContext, Detector, Match } from '../detector.js';

/**
 * Emails are found from each `@` outwards with bounded character scans (local part ≤ 64, domain ≤ 253),
 * so `a@a@a@…` or long runs cost one pass. The domain must look real: dot-separated labels without
 * leading or trailing hyphens, and an alphabetic TLD that is not a file extension (`logo@2x.png`).
 */
const FILE_EXTENSIONS: ReadonlySet<string> = new Set([
  'png', 'jpg', 'jpeg', 'gif', 'svg', 'webp', 'ico', 'bmp', 'css', 'js', 'mjs', 'cjs', 'ts', 'tsx', 'jsx',
  'json', 'yaml', 'yml', 'txt', 'html', 'htm', 'map', 'lock', 'xml', 'csv', 'pdf', 'zip', 'gz', 'tar',
  'exe', 'dll', 'so', 'wasm', 'mp3', 'mp4', 'woff', 'woff2', 'ttf', 'local', 'localhost', 'internal',
  'invalid', 'test', 'lan', 'home', 'corp', 'example',
]);

function isLocalChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) ||
    c === 46 || c === 95 || c === 37 || c === 43 || c === 45 || c === 39; // . _ % + - '
}

function isDomainChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 46 || c === 45;
}

function domainEnd(text: string, from: number): number {
  let i = from;
  const limit = Math.min(text.length, from + 253);
  while (i < limit && isDomainChar(text.charCodeAt(i))) i++;
  // Trailing dots and hyphens are punctuation ("mail me at a@b.com.").
  while (i > from && (text[i - 1] === '.' || text[i - 1] === '-')) i--;
  return i;
}

function plausibleDomain(domain: string): boolean {
  const labels = domain.split('.');
  if (labels.length < 2) return false;
  for (const l of labels) {
    if (l.length === 0 || l.length > 63 || l[0] === '-' || l[l.length - 1] === '-') return false;
  }
  const tld = labels[labels.length - 1];
  if (tld.length < 2 || tld.length > 24 || !/^[A-Za-z]+$/.test(tld)) return false;
  return !FILE_EXTENSIONS.has(tld.toLowerCase());
}

const INVISIBLE = /[\u00ad\u034f\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]/g;

export const emailDetector: Detector = {
  name: 'email',
  entities: ['EMAIL'],
  find(text: string, _ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    let at = text.indexOf('@');
    let floor = 0; // never scan left past the previous match or '@'
    while (at !== -1) {
      let s = at;
      const leftLimit = Math.max(floor, at - 64);
      while (s > leftLimit && isLocalChar(text.charCodeAt(s - 1))) s--;
      // A leading dot or apostrophe is punctuation around the address (`'a@b.com'`), not part of it.
      while (s < at && (text[s] === '.' || text[s] === "'")) s++;
      const e = domainEnd(text, at + 1);
      const next = text.indexOf('@', at + 1);
      const boundaryOk = e >= text.length || !isDomainChar(text.charCodeAt(e)) || text[e] === '.' || text[e] === '-';
      if (s < at && e > at + 1 && boundaryOk && (next === -1 || next >= e)) {
        const local = text.slice(s, at);
        const domain = text.slice(at + 1, e);
        // `https://carol@git.host/…` is a URL's user name, not a mailbox (credential URIs are their own entity).
        // Invisible characters between `://` and the user name do not make it a mailbox either.
        const urlUser = (s >= 3 && text.startsWith('://', s - 3)) || /:\/\/[A-Za-z0-9._%+'-]*$/.test(text.slice(Math.max(0, s - 80), s).replace(INVISIBLE, ''));
        if (!urlUser && local[local.length - 1] !== '.' && !local.includes('..') && plausibleDomain(domain) && !isPlaceholder(text.slice(s, e))) {
          out.push({ start: s, end: e, entity: 'EMAIL' });
          floor = e;
        }
      }
      floor = Math.max(floor, at + 1);
      at = next;
    }
  },
};
