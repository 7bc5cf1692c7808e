import { createHash, generateKeyPairSync } from 'node:crypto';
import { createBase58check } from '@scure/base';
import { entropyToMnemonic, validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import type { DlpEntity } from './entities.js';

/**
 * Synthetic values for the leak probes: real-format, checksum-valid values of every entity (positives)
 * and near-misses that must not be flagged (look-alikes). Everything is generated from a seed at run
 * time; the private keys are minted fresh and never written anywhere.
 */
export class SeededRandom {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  /** xorshift32: deterministic per seed, good enough for test data. */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 0x100000000;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  chars(alphabet: string, n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.next() * alphabet.length)];
    return s;
  }
  digits(n: number): string {
    return this.chars('0123456789', n);
  }
}

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const ALNUM = UPPER + LOWER + DIGITS;
const B64 = ALNUM + '+/';
const B64URL = ALNUM + '-_';

/** Random text over `alphabet` that has at least one upper-case letter, lower-case letter and digit. */
function mixed(r: SeededRandom, alphabet: string, n: number): string {
  for (;;) {
    const s = r.chars(alphabet, n);
    if (/[A-Z]/.test(s) && /[a-z]/.test(s) && /[0-9]/.test(s)) return s;
  }
}

function luhnDigit(body: string): string {
  let sum = 0;
  let double = true;
  for (let i = body.length - 1; i >= 0; i--) {
    let d = body.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return String((10 - (sum % 10)) % 10);
}

function group(digits: string, sizes: number[], sep: string): string {
  const out: string[] = [];
  let at = 0;
  for (const s of sizes) {
    out.push(digits.slice(at, at + s));
    at += s;
  }
  return out.join(sep);
}

function mod97(s: string): number {
  let rem = 0;
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    rem = c >= 65 ? (rem * 100 + (c - 55)) % 97 : (rem * 10 + (c - 48)) % 97;
  }
  return rem;
}

function ibanFor(country: string, bban: string): string {
  const check = 98 - mod97(bban + country + '00');
  return country + String(check).padStart(2, '0') + bban;
}

function abaFor(prefix8: string): string {
  const w = [3, 7, 1, 3, 7, 1, 3, 7];
  let sum = 0;
  for (let i = 0; i < 8; i++) sum += (prefix8.charCodeAt(i) - 48) * w[i];
  return prefix8 + String((10 - (sum % 10)) % 10);
}

function b64url(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}

const FIRST = ['alice', 'bob', 'carol', 'dmitri', 'elena', 'farah', 'gunnar', 'hiro', 'ines', 'jamal'];
const LAST = ['smith', 'okafor', 'nguyen', 'garcia', 'kowalski', 'tanaka', 'muller', 'haddad'];
const DOMAINS = ['corp-mail.com', 'acme.io', 'northwind.co.uk', 'globex.de', 'initech.net', 'umbrella.org'];

function ssn(r: SeededRandom): string {
  for (;;) {
    const area = r.int(1, 899);
    if (area === 666) continue;
    const v = `${String(area).padStart(3, '0')}-${String(r.int(1, 99)).padStart(2, '0')}-${String(r.int(1, 9999)).padStart(4, '0')}`;
    if (v !== '123-45-6789' && v !== '078-05-1120' && v !== '219-09-9999') return v;
  }
}

function card(r: SeededRandom, variant: number): string {
  const kinds: Array<[string, number, number[]]> = [
    ['4', 16, [4, 4, 4, 4]],
    [String(r.int(51, 55)), 16, [4, 4, 4, 4]],
    [String(r.int(2221, 2720)), 16, [4, 4, 4, 4]],
    [r.pick(['34', '37']), 15, [4, 6, 5]],
    ['6011', 16, [4, 4, 4, 4]],
  ];
  const [prefix, len, sizes] = kinds[variant % kinds.length];
  const body = prefix + r.digits(len - prefix.length - 1);
  const digits = body + luhnDigit(body);
  return [digits, group(digits, sizes, ' '), group(digits, sizes, '-'), group(digits, sizes, '.')][Math.floor(variant / kinds.length) % 4];
}

function iban(r: SeededRandom, variant: number): string {
  const options: Array<() => string> = [
    () => ibanFor('DE', r.digits(18)),
    () => ibanFor('GB', r.chars(UPPER, 4) + r.digits(14)),
    () => ibanFor('FR', r.digits(10) + r.chars(UPPER + DIGITS, 11) + r.digits(2)),
    () => ibanFor('NL', r.chars(UPPER, 4) + r.digits(10)),
    () => ibanFor('ES', r.digits(20)),
  ];
  const compact = options[variant % options.length]();
  return variant % 2 === 0 ? compact : compact.replace(/(.{4})(?=.)/g, '$1 ');
}

function aba(r: SeededRandom): string {
  const prefix = String(r.pick([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32])).padStart(2, '0');
  return abaFor(prefix + r.digits(6));
}

function phone(r: SeededRandom, variant: number): string {
  const area = `${r.int(2, 9)}${r.digits(2)}`;
  const exch = `${r.int(2, 9)}${r.digits(2)}`;
  const line = r.digits(4);
  const styles = [
    `+1 ${area} ${exch} ${line}`,
    `(${area}) ${exch}-${line}`,
    `${area}-${exch}-${line}`,
    `+44 20 ${r.int(7, 8)}${r.digits(3)} ${r.digits(4)}`,
    `+49 30 ${r.int(1, 9)}${r.digits(7)}`,
    `+1${area}${exch}${line}`,
    `020 ${r.int(7, 8)}${r.digits(3)} ${r.digits(4)}`,
    `${area}.${exch}.${line}`,
  ];
  return styles[variant % styles.length];
}

function ipAddress(r: SeededRandom, variant: number): string {
  if (variant % 3 === 2) {
    const g = () => r.chars('0123456789abcdef', r.int(1, 4)).replace(/^0+(?=.)/, '');
    return `2001:db8:${g()}:${g()}::${g()}:${r.int(1, 9)}${r.digits(2)}`;
  }
  return `${r.pick([10, 172, 192, 34, 52, 100])}.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(1, 254)}`;
}

function jwt(r: SeededRandom): string {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ sub: `agent-${r.digits(4)}`, iat: 1764300000 + r.int(0, 99999), scope: 'orders:read' }));
  return `${header}.${payload}.${r.chars(B64URL, 43)}`;
}

let pemCache: string[] = [];
function privateKey(r: SeededRandom): string {
  if (pemCache.length < 3) {
    const type = (['ec', 'ed25519', 'rsa'] as const)[pemCache.length];
    const { privateKey } =
      type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 1024 })
        : type === 'ec'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : generateKeyPairSync('ed25519');
    pemCache = [...pemCache, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()];
  }
  return r.pick(pemCache).trim();
}

function credentialUri(r: SeededRandom, variant: number): string {
  const pw = mixed(r, ALNUM, 14);
  const styles = [
    `postgres://svc_${r.chars(LOWER, 5)}:${pw}@db-${r.int(1, 9)}.data.svc:5432/orders`,
    `mongodb+srv://app:${pw}@cluster0.${r.chars(LOWER, 6)}.mongodb.net/prod`,
    `redis://:${pw}@cache.internal:6379/0`,
    `amqp://worker:${pw}@mq.${r.chars(LOWER, 5)}.net:5672/`,
  ];
  return styles[variant % styles.length];
}

function bytesOf(r: SeededRandom, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.int(0, 255);
  return out;
}

const b58check = createBase58check((d: Uint8Array) => new Uint8Array(createHash('sha256').update(d).digest()));
const HEX = '0123456789abcdef';

function nhsNumber(r: SeededRandom): string {
  for (;;) {
    const nine = r.digits(9);
    let sum = 0;
    for (let i = 0; i < 9; i++) sum += Number(nine[i]) * (10 - i);
    const check = (11 - (sum % 11)) % 11;
    if (check !== 10) return nine + String(check);
  }
}

function sinNumber(r: SeededRandom): string {
  const body = String(r.pick([1, 2, 3, 4, 5, 6, 7, 9])) + r.digits(7);
  return body + luhnDigit(body);
}

function cryptoKey(r: SeededRandom, variant: number): string {
  switch (variant % 4) {
    case 0:
      return b58check.encode(Uint8Array.from([0x80, ...bytesOf(r, 32), 0x01]));
    case 1:
      return b58check.encode(Uint8Array.from([0x80, ...bytesOf(r, 32)]));
    case 2:
      return entropyToMnemonic(bytesOf(r, r.pick([16, 32])), wordlist);
    default:
      return `private key: 0x${r.chars(HEX, 64)}`;
  }
}

function gcpKeyFile(r: SeededRandom): string {
  const project = `${r.chars(LOWER, 6)}-${r.digits(6)}`;
  return JSON.stringify({
    type: 'service_account',
    project_id: project,
    private_key_id: r.chars(HEX, 40),
    client_email: `svc-${r.chars(LOWER, 5)}@${project}.iam.gserviceaccount.com`,
    client_id: r.digits(21),
  });
}

/** The canary format the probe plants; put this pattern in `dlp.canaries` to have CANARY scored. */
export const PROBE_CANARY_PATTERN = 'MESHPEP-CANARY-[0-9a-f]{16}';

/** A positive value of `entity`, in a format chosen by `variant`. */
export function plantValue(entity: DlpEntity, r: SeededRandom, variant: number): string {
  switch (entity) {
    case 'EMAIL':
      return `${r.pick(FIRST)}.${r.pick(LAST)}${r.int(1, 99)}@${r.pick(DOMAINS)}`;
    case 'PHONE':
      return phone(r, variant);
    case 'US_SSN':
      return ssn(r);
    case 'CREDIT_CARD':
      return card(r, variant);
    case 'IBAN':
      return iban(r, variant);
    case 'ABA_ROUTING':
      return aba(r);
    case 'IP_ADDRESS':
      return ipAddress(r, variant);
    case 'AWS_ACCESS_KEY':
      return r.pick(['AKIA', 'ASIA']) + r.chars(UPPER + '234567', 16);
    case 'AWS_SECRET_KEY':
      return mixed(r, B64, 40);
    case 'GITHUB_TOKEN':
      return variant % 3 === 2 ? `github_pat_${mixed(r, ALNUM, 22)}_${mixed(r, ALNUM, 59)}` : `${r.pick(['ghp', 'gho', 'ghs', 'ghu'])}_${mixed(r, ALNUM, 36)}`;
    case 'SLACK_TOKEN':
      return `${r.pick(['xoxb', 'xoxp', 'xoxa'])}-${r.digits(12)}-${r.digits(13)}-${mixed(r, ALNUM, 24)}`;
    case 'STRIPE_KEY':
      return `${r.pick(['sk_live_', 'rk_live_', 'sk_test_'])}${mixed(r, ALNUM, 24)}`;
    case 'OPENAI_KEY':
      return variant % 2 === 0 ? `sk-proj-${mixed(r, ALNUM + '_-', 48)}` : `sk-${mixed(r, ALNUM, 48)}`;
    case 'ANTHROPIC_KEY':
      return `sk-ant-api03-${mixed(r, ALNUM + '_-', 93)}AA`;
    case 'JWT':
      return jwt(r);
    case 'PRIVATE_KEY':
      return privateKey(r);
    case 'CREDENTIAL_URI':
      return credentialUri(r, variant);
    case 'CANARY':
      return `MESHPEP-CANARY-${r.chars('0123456789abcdef', 16)}`;
    case 'UK_NHS': {
      const n = nhsNumber(r);
      return variant % 2 === 0 ? `NHS number ${n.slice(0, 3)} ${n.slice(3, 6)} ${n.slice(6)}` : `nhs_no ${n}`;
    }
    case 'CA_SIN': {
      const n = sinNumber(r);
      return variant % 2 === 0 ? `${n.slice(0, 3)} ${n.slice(3, 6)} ${n.slice(6)}` : `SIN ${n}`;
    }
    case 'GOOGLE_API_KEY':
      return `AIza${mixed(r, ALNUM + '_-', 35)}`;
    case 'GCP_SERVICE_ACCOUNT':
      return gcpKeyFile(r);
    case 'AZURE_STORAGE_KEY':
      return `DefaultEndpointsProtocol=https;AccountName=${r.chars(LOWER, 8)};AccountKey=${Buffer.from(bytesOf(r, 64)).toString('base64')};EndpointSuffix=core.windows.net`;
    case 'NPM_TOKEN':
      return `npm_${mixed(r, ALNUM, 36)}`;
    case 'CRYPTO_PRIVATE_KEY':
      return cryptoKey(r, variant);
  }
}

/** A near-miss of `entity` that a good detector must not flag (wrong checksum, placeholder, wrong shape). */
export function lookAlike(entity: DlpEntity, r: SeededRandom, variant: number): string {
  const pick = <T>(xs: readonly T[]): T => xs[variant % xs.length];
  switch (entity) {
    case 'EMAIL':
      return pick([`logo@2x.png`, `${r.pick(FIRST)}@localhost`, `@grpc/grpc-js@1.14.${r.int(1, 9)}`, `${r.pick(FIRST)} at ${r.pick(DOMAINS)}`, `user@{{ domain }}`]);
    case 'PHONE':
      return pick([`2026-${String(r.int(1, 12)).padStart(2, '0')}-${String(r.int(10, 28))}`, `v${r.int(1, 9)}.${r.int(0, 9)}.${r.int(0, 20)}`, `ORD-${r.digits(3)}-${r.digits(3)}-${r.digits(4)}`, `${r.int(100, 999)}-${r.digits(4)}`, `build 17643${r.digits(5)}`]);
    case 'US_SSN':
      return pick(['078-05-1120', `000-${r.int(10, 99)}-${r.int(1000, 9999)}`, `666-${r.int(10, 99)}-${r.int(1000, 9999)}`, `9${r.digits(2)}-${r.int(10, 99)}-${r.int(1000, 9999)}`, `${r.int(100, 665)}-00-${r.int(1000, 9999)}`, '219-09-9999', '123-45-6789']);
    case 'CREDIT_CARD': {
      const body = '4' + r.digits(14);
      const bad = String((Number(luhnDigit(body)) + r.int(1, 9)) % 10);
      return pick([group(body + bad, [4, 4, 4, 4], ' '), `9${r.digits(15)}`, 'XXXX-XXXX-XXXX-' + r.digits(4), '1234 5678 9012 3456']);
    }
    case 'IBAN': {
      const good = ibanFor('DE', r.digits(18));
      const wrongCheck = good.slice(0, 2) + String((Number(good.slice(2, 4)) % 97) + 1).padStart(2, '0') + good.slice(4);
      return pick([wrongCheck === good ? 'DE00' + good.slice(4) : wrongCheck, good.slice(0, -1), 'QQ' + good.slice(2)]);
    }
    case 'ABA_ROUTING': {
      const good = aba(r);
      const bad = good.slice(0, 8) + String((Number(good[8]) + r.int(1, 9)) % 10);
      return pick([`routing number ${bad}`, `invoice ${good}`, `routing number 9${r.digits(8)}`]);
    }
    case 'IP_ADDRESS':
      return pick([`10.0.${r.int(0, 255)}.256`, `v${r.int(1, 9)}.${r.int(0, 9)}.${r.int(0, 9)}.${r.int(0, 9)}`, `${r.int(10, 23)}:${r.int(10, 59)}:${r.int(10, 59)}`, `999.${r.int(1, 9)}.${r.int(1, 9)}.${r.int(1, 9)}`, 'std::vector']);
    case 'AWS_ACCESS_KEY':
      return pick(['AKIA' + r.chars(UPPER, 15), 'AKIAXXXXXXXXXXXXXXXX', 'akia' + r.chars(LOWER, 16)]);
    case 'AWS_SECRET_KEY':
      return pick([`checksum ${mixed(r, B64, 40)}`, `aws_secret_access_key=${'0123456789abcdef'.repeat(3).slice(0, 40)}`, 'aws_secret_access_key=${AWS_SECRET_ACCESS_KEY}']);
    case 'GITHUB_TOKEN':
      return pick(['ghp_' + mixed(r, ALNUM, 20), 'ghp_' + 'x'.repeat(36), 'github_pat_<your-token>']);
    case 'SLACK_TOKEN':
      return pick(['xoxb-your-bot-token', `xoxb-${r.digits(4)}`, 'xoxb-{{ slack_token }}']);
    case 'STRIPE_KEY':
      return pick([`pk_live_${mixed(r, ALNUM, 24)}`, 'sk_live_your_key_here_0000', `sk_live_${r.chars(ALNUM, 8)}`]);
    case 'OPENAI_KEY':
      return pick(['sk-this-is-not-a-real-key-at-all', `sk-${r.digits(6)}`, 'sk-...' + r.chars(LOWER, 4)]);
    case 'ANTHROPIC_KEY':
      return pick(['sk-ant-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'sk-ant-api03-...', 'sk-ant-${ANTHROPIC_API_KEY}']);
    case 'JWT':
      return pick([`eyJ${r.chars(B64URL, 20)}.eyJ${r.chars(B64URL, 20)}.${r.chars(B64URL, 20)}`, 'eyJhbGciOi.eyJzdWIi.c2ln']);
    case 'PRIVATE_KEY':
      return pick(['-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----', '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----']);
    case 'CREDENTIAL_URI':
      return pick(['postgres://app:${DB_PASSWORD}@db:5432/x', `https://${r.pick(FIRST)}@git.${r.pick(DOMAINS)}/repo.git`, 'redis://:<password>@cache:6379', 'https://docs.acme.io/a:b']);
    case 'CANARY':
      return pick([`MESHPEP-CANARY-${r.chars('ghijklmnopqrstuvwxyz', 16)}`, `MESHPEP-CANARY-${r.chars('0123456789abcdef', 8)}`]);
    case 'UK_NHS': {
      const n = nhsNumber(r);
      const bad = n.slice(0, 9) + String((Number(n[9]) + r.int(1, 9)) % 10);
      return pick([`NHS number ${bad}`, `order ${n}`, `NHS number ${bad.slice(0, 3)} ${bad.slice(3, 6)} ${bad.slice(6)}`]);
    }
    case 'CA_SIN': {
      const n = sinNumber(r);
      const bad = n.slice(0, 8) + String((Number(n[8]) + r.int(1, 9)) % 10);
      return pick([`${bad.slice(0, 3)} ${bad.slice(3, 6)} ${bad.slice(6)}`, `SIN ${bad}`, `ref ${n.slice(0, 3)}.${n.slice(3, 6)}.${n.slice(6)}`]);
    }
    case 'GOOGLE_API_KEY':
      return pick([`AIza${mixed(r, ALNUM, 20)}`, 'AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX', 'AIza<your-api-key>']);
    case 'GCP_SERVICE_ACCOUNT':
      return pick([JSON.stringify({ type: 'service_account', private_key_id: 'your-private-key-id' }), `commit ${r.chars(HEX, 40)}`]);
    case 'AZURE_STORAGE_KEY':
      return pick([`checksum ${Buffer.from(bytesOf(r, 64)).toString('base64')}`, 'AccountKey=<storage-account-key>', `AccountKey=${Buffer.from(bytesOf(r, 32)).toString('base64')}`]);
    case 'NPM_TOKEN':
      return pick([`npm_${mixed(r, ALNUM, 12)}`, 'npm_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX', 'npm_config_registry']);
    case 'CRYPTO_PRIVATE_KEY': {
      const wif = b58check.encode(Uint8Array.from([0x80, ...bytesOf(r, 32), 0x01]));
      const broken = wif.slice(0, -1) + (wif.endsWith('z') ? 'y' : 'z');
      // Twelve list words whose checksum fails (one in sixteen random picks would pass it).
      let words = '';
      do words = Array.from({ length: 12 }, () => r.pick(wordlist)).join(' ');
      while (validateMnemonic(words, wordlist));
      return pick([broken, `sha256 ${r.chars(HEX, 64)}`, words, `tx ${r.chars(HEX, 64)}`]);
    }
  }
}
