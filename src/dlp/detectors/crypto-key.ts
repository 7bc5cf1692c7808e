import { createHash } from 'node:crypto';
import { createBase58check } from '@scure/base';
import { validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import type { DlpEntity } from '../entities.js';
import { isSecretPlaceholder } from '../placeholder.js';
import { hasContext, isWordChar, type DetectContext, type Detector, type Match } from '../detector.js';
import { longRuns } from '../runs.js';

/**
 * Cryptocurrency private keys, checksum-verified where the format has one:
 *  - WIF (Wallet Import Format): Base58Check of 0x80/0xef + 32 key bytes (+ 0x01 when compressed),
 *    51 or 52 characters; the 4-byte double-SHA-256 checksum must hold;
 *  - BIP-39 seed phrases: 12 to 24 words of the English list whose last word carries the entropy
 *    checksum (`@scure/bip39`), so a run of list words that fails the checksum is not a seed;
 *  - raw 64-hex-digit keys, which have no checksum: only next to a private-key word, as hashes look
 *    the same.
 */
const base58check = createBase58check((data: Uint8Array) => new Uint8Array(createHash('sha256').update(data).digest()));
/**
 * BIP-39 English words are unique in their first four letters (three-letter words are whole): a table
 * indexed by those letters tells whether a word can be a list word without building a string for it.
 * validateMnemonic checks the whole words of a candidate phrase.
 */
const PREFIX = new Uint8Array(27 * 27 * 27 * 27);
function prefixIndex(text: string, s: number, len: number): number {
  let idx = 0;
  for (let k = 0; k < 4; k++) idx = idx * 27 + (k < len ? text.charCodeAt(s + k) - 96 : 0);
  return idx;
}
for (const w of wordlist) PREFIX[prefixIndex(w, 0, w.length)] = 1;
const PHRASE_LENGTHS = [24, 21, 18, 15, 12] as const;
const WIF = /(?<![1-9A-HJ-NP-Za-km-z])[59KLc][1-9A-HJ-NP-Za-km-z]{50,51}(?![1-9A-HJ-NP-Za-km-z])/g;
const HEX_KEY = /(?<![0-9A-Za-z])(?:0x)?[0-9a-fA-F]{64}(?![0-9A-Za-z])/g;
/** Twelve short lower-case words in a row, checked natively before any word is looked up. */
const PHRASE_GATE = /(?:[a-z]{3,8}\s{1,3}){11}[a-z]{3,8}/;
const SEED_CONTEXT = /seed|mnemonic|recovery|phrase|wallet|bip-?39/i;
const KEY_CONTEXT = /priv(?:ate)?[_ -]?key|secret[_ -]?key|signing[_ -]?key|wallet|\bwif\b|seed|keystore|eth(?:ereum)?[_ -]?key|btc|bitcoin|solana|mnemonic/i;

function wifValid(s: string): boolean {
  let raw: Uint8Array;
  try {
    raw = base58check.decode(s);
  } catch {
    return false;
  }
  if (raw[0] !== 0x80 && raw[0] !== 0xef) return false;
  return raw.length === 33 || (raw.length === 34 && raw[33] === 0x01);
}

function isLower(c: number): boolean {
  return c >= 97 && c <= 122;
}

function onlySpace(text: string, from: number, to: number): boolean {
  if (to - from < 1 || to - from > 3) return false;
  for (let k = from; k < to; k++) {
    const c = text.charCodeAt(k);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return false;
  }
  return true;
}

/** Seed phrases: runs of list words joined by single spaces (or newlines), checked by their checksum. */
function findPhrases(text: string, out: Match[]): void {
  // A 12-word phrase has at least 11 separators and 47 characters; most strings are shorter.
  if (text.length < 47 || !PHRASE_GATE.test(text)) return;
  const starts: number[] = [];
  const ends: number[] = [];
  let i = 0;
  // A run of list words is tried as a whole phrase; a longer run (list words around the phrase) only at
  // either end and only after a seed-phrase word: every window tried is one more 1-in-16 chance for
  // ordinary words to pass a 12-word checksum.
  const flush = () => {
    const count = starts.length;
    const named = SEED_CONTEXT.test(text.slice(Math.max(0, starts[0] - 64), starts[0] + 12 * 9));
    for (const n of PHRASE_LENGTHS) {
      if (n > count || (n < count && !named)) continue;
      for (const k of count === n ? [0] : [0, count - n]) {
        const phrase = text.slice(starts[k], ends[k + n - 1]).split(/\s+/).join(' ');
        if (validateMnemonic(phrase, wordlist)) {
          out.push({ start: starts[k], end: ends[k + n - 1], entity: 'CRYPTO_PRIVATE_KEY' });
          starts.length = 0;
          ends.length = 0;
          return;
        }
      }
    }
    starts.length = 0;
    ends.length = 0;
  };
  while (i < text.length) {
    if (!isLower(text.charCodeAt(i))) {
      i++;
      continue;
    }
    const s = i;
    while (i < text.length && isLower(text.charCodeAt(i))) i++;
    const len = i - s;
    // Cheap rejections first: most words in prose are not separated from a list-word run by spaces.
    const inList = len >= 3 && len <= 8 && PREFIX[prefixIndex(text, s, len)] === 1 && !isWordChar(text, s - 1) && !isWordChar(text, i);
    if (!inList) {
      if (starts.length >= 12) flush();
      starts.length = 0;
      ends.length = 0;
      continue;
    }
    // Words of one phrase are separated by whitespace only (one space, or a numbered list's line breaks).
    if (starts.length > 0 && !onlySpace(text, ends[ends.length - 1], s)) {
      if (starts.length >= 12) flush();
      starts.length = 0;
      ends.length = 0;
    }
    starts.push(s);
    ends.push(i);
  }
  if (starts.length >= 12) flush();
}

export const cryptoKeyDetector: Detector = {
  name: 'crypto-key',
  entities: ['CRYPTO_PRIVATE_KEY'],
  find(text: string, ctx: DetectContext, _enabled: ReadonlySet<DlpEntity>, out: Match[]): void {
    // WIF keys and hex keys are runs of 51+ token characters: texts without a long run skip both regexes.
    const runs = longRuns(text);
    const longest = runs.reduce((m, [a, b]) => Math.max(m, b - a), 0);
    if (longest >= 51) {
      WIF.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = WIF.exec(text)) !== null) {
        if (wifValid(m[0])) out.push({ start: m.index, end: m.index + m[0].length, entity: 'CRYPTO_PRIVATE_KEY' });
      }
    }
    if (longest >= 64) {
      HEX_KEY.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = HEX_KEY.exec(text)) !== null) {
        if (!isSecretPlaceholder(m[0]) && hasContext(text, m.index, ctx, KEY_CONTEXT)) out.push({ start: m.index, end: m.index + m[0].length, entity: 'CRYPTO_PRIVATE_KEY' });
      }
    }
    findPhrases(text, out);
  },
};
