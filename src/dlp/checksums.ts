import { IBAN_LENGTHS } from './iban-lengths.js';

/**
 * Validation for entities that carry a checksum or issuance rules, so that look-alikes (order numbers,
 * test sequences, random digits) are not reported. Inputs are digit strings without separators unless
 * stated otherwise.
 */

/** Luhn (mod 10) as used by payment card numbers. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/**
 * Issuer prefixes of the major card networks (Visa, Mastercard incl. 2-series, Amex, Discover, JCB,
 * Diners, UnionPay, Maestro) with the lengths each issues. A Luhn-valid 16-digit number that starts
 * with, say, 9 is an account or order number, not a card.
 */
export function cardIssuerPlausible(digits: string): boolean {
  const n = digits.length;
  const p2 = Number(digits.slice(0, 2));
  const p3 = Number(digits.slice(0, 3));
  const p4 = Number(digits.slice(0, 4));
  const p6 = Number(digits.slice(0, 6));
  if (digits[0] === '4') return n === 13 || n === 16 || n === 19; // Visa
  if (p2 >= 51 && p2 <= 55) return n === 16; // Mastercard
  if (p4 >= 2221 && p4 <= 2720) return n === 16; // Mastercard 2-series
  if (p2 === 34 || p2 === 37) return n === 15; // Amex
  if (p4 === 6011 || p2 === 65 || (p3 >= 644 && p3 <= 649) || (p6 >= 622126 && p6 <= 622925)) {
    return n >= 16 && n <= 19; // Discover
  }
  if (p4 >= 3528 && p4 <= 3589) return n >= 16 && n <= 19; // JCB
  if (p2 === 36 || p2 === 38 || p2 === 39 || (p3 >= 300 && p3 <= 305) || p3 === 309) return n >= 14 && n <= 19; // Diners
  if (p2 === 62) return n >= 16 && n <= 19; // UnionPay
  if (p2 === 50 || (p2 >= 56 && p2 <= 69)) return n >= 12 && n <= 19; // Maestro
  return false;
}

/**
 * IBAN: two-letter country with its registered length (SWIFT IBAN registry), two check digits, and the
 * ISO 7064 mod-97 check over the rearranged number. `compact` is upper-case with no spaces.
 */
export function ibanValid(compact: string): boolean {
  const expected = IBAN_LENGTHS.get(compact.slice(0, 2));
  if (expected === undefined || compact.length !== expected) return false;
  const check = compact.slice(2, 4);
  if (check === '00' || check === '01' || check === '99') return false;
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let rem = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i);
    if (c >= 48 && c <= 57) rem = (rem * 10 + (c - 48)) % 97;
    else if (c >= 65 && c <= 90) rem = (rem * 100 + (c - 55)) % 97;
    else return false;
  }
  return rem === 1;
}

/**
 * ABA routing transit number: 9 digits, a Federal Reserve prefix (00-12 banks, 21-32 thrifts, 61-72
 * electronic, 80 traveller's cheques) and the 3-7-1 weighted checksum.
 */
export function abaValid(digits: string): boolean {
  if (digits.length !== 9) return false;
  const prefix = Number(digits.slice(0, 2));
  const prefixOk = prefix <= 12 || (prefix >= 21 && prefix <= 32) || (prefix >= 61 && prefix <= 72) || prefix === 80;
  if (!prefixOk || digits === '000000000') return false;
  const w = [3, 7, 1, 3, 7, 1, 3, 7, 1];
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += (digits.charCodeAt(i) - 48) * w[i];
  return sum % 10 === 0;
}

/** Numbers the SSA never issued or that were published (Woolworth's wallet card, ads, examples). */
const INVALID_SSNS: ReadonlySet<string> = new Set(['078051120', '219099999', '123456789', '457555462']);

/**
 * US Social Security number issuance rules: area not 000, 666 or 900-999; group not 00; serial not
 * 0000; not one of the published numbers; not a single repeated digit (111-11-1111 and friends).
 */
export function ssnValid(digits: string): boolean {
  if (digits.length !== 9) return false;
  const area = digits.slice(0, 3);
  if (area === '000' || area === '666' || area[0] === '9') return false;
  if (digits.slice(3, 5) === '00' || digits.slice(5) === '0000') return false;
  if (INVALID_SSNS.has(digits)) return false;
  if (digits === digits[0].repeat(9)) return false;
  return true;
}

/**
 * UK NHS number: ten digits, the last a mod-11 check over the first nine weighted 10..2; a remainder
 * giving check 10 is never issued.
 */
export function nhsValid(digits: string): boolean {
  if (!/^[0-9]{10}$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += (digits.charCodeAt(i) - 48) * (10 - i);
  const check = (11 - (sum % 11)) % 11;
  return check !== 10 && check === digits.charCodeAt(9) - 48 && !/^(\d)\1{9}$/.test(digits);
}

/** Canadian SIN: nine digits, Luhn; 0 and 8 are not issued as first digits. */
export function sinValid(digits: string): boolean {
  return /^[0-9]{9}$/.test(digits) && digits[0] !== '0' && digits[0] !== '8' && luhnValid(digits);
}
