import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { DLP_ENTITIES } from '../../src/dlp/index.js';
import { findingsOf } from './helpers.js';

// Secret-shaped values are assembled at run time so no token-like literal sits in the repository.
const A = 'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5cD7eF9gH1iJ3kL5mN7oP9qR1sT3uV5wX7yZ9';
const b64url = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const jwt = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub: 'agent-7', iat: 1764300000 })}.${A.slice(0, 43)}`;

/** entity → [positives], [look-alikes]. Each positive must yield exactly one finding of that entity. */
const CASES: Record<string, { pos: string[]; neg: string[] }> = {
  EMAIL: {
    pos: ['write to alice.smith@corp-mail.com today', 'cc: o\'brien+tag@mail.northwind.co.uk.'],
    neg: ['logo@2x.png', 'ping alice@localhost', 'npm i @grpc/grpc-js@1.14.1', 'user@{{ domain }}', 'a@b', 'https://carol@git.acme.io/r.git', 'a@a@a@a'],
  },
  PHONE: {
    pos: ['call +1 415 555 0132 now', 'call (415) 555-0132', 'tel 415-555-0132', '+44 20 7946 0958', '+4930123456789', 'office 020 7946 0958', 'phone: 4155550132'],
    neg: ['on 2026-11-28', 'version 10.4.0', 'ORD-415-555-0132', 'ext 555-0132', 'id 4155550132', 'ts 1764300000'],
  },
  US_SSN: {
    pos: ['SSN 536-22-1234', 'ssn: 536 22 1234', 'social security number 536221234'],
    neg: ['SSN 078-05-1120', 'SSN 000-12-3456', 'SSN 666-12-3456', 'SSN 912-12-3456', 'SSN 536-00-1234', 'SSN 536-22-0000', 'SSN 123-45-6789', 'ref 536221234'],
  },
  CREDIT_CARD: {
    pos: ['card 4111 1111 1111 1111', 'card 4111-1111-1111-1111', 'card 4111111111111111', 'amex 3782 822463 10005', 'mc 5555555555554444'],
    neg: ['card 4111 1111 1111 1112', 'card 9111111111111119', 'XXXX-XXXX-XXXX-1111', 'tracking 1Z999AA10123456784', 'card 4251 0090 8152 5925'],
  },
  IBAN: {
    pos: ['IBAN DE89370400440532013000', 'pay to DE89 3704 0044 0532 0130 00.', 'GB82WEST12345698765432'],
    neg: ['DE89370400440532013001', 'DE8937040044053201300', 'QQ89370400440532013000'],
  },
  ABA_ROUTING: {
    pos: ['routing number 021000021', 'ABA: 011000015', 'RTN 021000021'],
    neg: ['routing number 021000022', 'invoice 021000021', 'routing 990000003'],
  },
  IP_ADDRESS: {
    pos: ['from 10.1.2.3', 'peer 192.168.0.17:8080', 'v6 2001:db8:85a3::8a2e:370:7334', 'link fe80::1ff:fe23:4567:890a', 'full 2001:0db8:0000:0000:0000:ff00:0042:8329'],
    neg: ['10.0.0.256', 'v1.2.3.4', 'at 12:30:45', '999.1.1.1', 'std::vector', 'mac 00:1a:2b:3c:4d:5e', 'mask 255.255.255.0', 'bind ::1'],
  },
  AWS_ACCESS_KEY: {
    pos: [`key AKIA${'Z3MSJV7WQ4TLVQ5E'}`, `ASIA${'QWERTYUIOPASDFGH'}`],
    neg: ['AKIAZ3MSJV7WQ4TLVQ5', 'AKIAXXXXXXXXXXXXXXXX', 'akiaz3msjv7wq4tlvq5e', 'XAKIAZ3MSJV7WQ4TLVQ5E'],
  },
  AWS_SECRET_KEY: {
    pos: [`aws_secret_access_key = ${A.slice(0, 38)}/+`, `"SecretAccessKey": "${A.slice(2, 42)}"`],
    neg: [`checksum ${A.slice(0, 40)}`, `aws_secret_access_key=${'0123456789abcdef'.repeat(3).slice(0, 40)}`, 'aws_secret_access_key=${AWS_SECRET_ACCESS_KEY}'],
  },
  GITHUB_TOKEN: {
    pos: [`token ghp_${A.slice(0, 36)}`, `gho_${A.slice(1, 37)}`, `github_pat_${A.slice(0, 22)}_${A.slice(3, 62)}`],
    neg: [`ghp_${A.slice(0, 20)}`, `ghp_${'x'.repeat(36)}`, 'github_pat_<your-token>'],
  },
  SLACK_TOKEN: {
    pos: [`xoxb-123456789012-1234567890123-${A.slice(0, 24)}`, `xoxp-${'98765432101'}-${'12345678901'}-${A.slice(5, 29)}`],
    neg: ['xoxb-your-bot-token', 'xoxb-1234', 'xoxb-{{ slack_token }}'],
  },
  STRIPE_KEY: {
    pos: [`sk_live_${A.slice(0, 24)}`, `rk_live_${A.slice(4, 28)}`, `sk_test_${A.slice(1, 25)}`],
    neg: [`pk_live_${A.slice(0, 24)}`, 'sk_live_your_key_here_0000', 'sk_live_short'],
  },
  OPENAI_KEY: {
    pos: [`sk-proj-${A.slice(0, 48)}`, `sk-${A.slice(10, 58)}`],
    neg: ['sk-this-is-not-a-real-key-at-all', 'sk-123456', 'sk-...abcd'],
  },
  ANTHROPIC_KEY: {
    pos: [`sk-ant-api03-${A}AA`],
    neg: ['sk-ant-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'sk-ant-api03-...', 'sk-ant-${ANTHROPIC_API_KEY}'],
  },
  JWT: {
    pos: [`Bearer ${jwt}`],
    neg: [`eyJ${A.slice(0, 20)}.eyJ${A.slice(1, 21)}.${A.slice(0, 20)}`, 'eyJhbGciOi.eyJzdWIi.c2ln'],
  },
  PRIVATE_KEY: {
    pos: [pem, `key: ${pem.split('\n').slice(0, 3).join('\n')}`],
    neg: ['-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----', '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmg\n-----END CERTIFICATE-----'],
  },
  UK_NHS: {
    pos: ['NHS number 943 476 5919', 'nhs_no 4315970530 on file', 'patient id: 624 268 8190'],
    neg: ['NHS number 943 476 5918', 'order 9002545479', 'NHS number 5975720703'],
  },
  CA_SIN: {
    pos: ['346 675 119', 'SIN 518164389 on file', 'sin: 657-849-634'],
    neg: ['677 741 550', 'SIN 944575598', 'ref 180.411.480', 'SIN 046 454 286'],
  },
  GOOGLE_API_KEY: {
    pos: ['key=AIzarG_RbYpIAAUW3lPJRpLwYqXPLzNlhMDAkcK', '"AIzaHguY8jQ5fLdPRSdmwpH1m8rvZOsfHNnGmRM"'],
    neg: ['AIzazm4WsaEBCLpGQeoIRGqq', 'AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX', 'AIza<your-api-key>'],
  },
  GCP_SERVICE_ACCOUNT: {
    pos: ['{"type":"service_account","project_id":"rehett-218499","private_key_id":"4a0983c244005a7cc7c0d1eadcdc4a0e0676a13f","client_id":"244846852375745084837"}'],
    neg: ['{"type":"service_account","private_key_id":"your-private-key-id"}', 'commit dbb5ecabdcb04e86cd7c91b4f6f2cea6b9cf780b'],
  },
  AZURE_STORAGE_KEY: {
    pos: ['DefaultEndpointsProtocol=https;AccountName=mmqfkdhr;AccountKey=QHR2B5dLSOHR1GPkicnQZHhU7q2LJ7jR+4Lx7IhLd8rTvQfeSbi8I2DdXeXFbDR6avknE3JULY1iKUMVPvNpnw==;EndpointSuffix=core.windows.net'],
    neg: ['checksum 4aIs/TWqHfXgu4xiaMxYHKJE8xA/XLzZWRZ+jNsrUP3HWV7G4OtuHY2GoOstWrWEbyQGL2F+zN2ZrNk6BTk8dw==', 'AccountKey=<storage-account-key>', 'AccountKey=cPMIs4Ff1Z2HsL5iXwEv5Pr0FlK2hWYSiP8SRhkEei8='],
  },
  NPM_TOKEN: {
    pos: ['//registry.npmjs.org/:_authToken=npm_5jWeVGbTiKOz0tO1GoVcyKmiynHYAbHuLbKU', 'NPM_TOKEN=npm_sNHRt1qya1k4JVO71H9i1lBKssPE1rZ7Mcmf'],
    neg: ['npm_58NRSabOQhPQ', 'npm_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX', 'npm_config_registry'],
  },
  CRYPTO_PRIVATE_KEY: {
    pos: [
      'wif KwqYZqXg4NuamNnAaLHoTHkr6M9wowN3iF52d1PHo8Gitr5eW4jU',
      '5K2AByaPQ6wfcLMBTbE1mCCqXNFXtFeGRNUmFbnz897yviWPH2Z',
      'seed: verify theme velvet acoustic raise visit decline brave vivid panic shrug game',
      'private key: 0x7017647c39d69366aee713fda8bdaaacc97d29377a90b8923ae3ab1ed0fe73ad',
    ],
    neg: [
      'L1oUaF1L3BjofwJ6o74kHLtUS2uLe8kQ37GB9knrmbPRwLBcR7Fz',
      'sha256 5f07d936f3bec3e6605166d96de9efb39b2f8fcae27bd0c5fb64fed135b42177',
      'sting sorry alert rain wealth prison ripple fit beyond price tomorrow lawn',
      'tx e6d4ae1fe31aeca7c7ccc75b37ce464bddb4a8efa46aebb41560ea5a60b0b525',
    ],
  },
  CREDENTIAL_URI: {
    pos: ['postgres://svc:Zq8xT2mP9wL4@db.data.svc:5432/orders', 'redis://:Zq8xT2mP9wL4@cache:6379/0', 'mongodb+srv://app:Zq8xT2mP9wL4@cluster0.abc.mongodb.net/prod'],
    neg: ['postgres://app:${DB_PASSWORD}@db:5432/x', 'https://carol@git.acme.io/repo.git', 'redis://:<password>@cache:6379', 'https://docs.acme.io/a:b', 'amqp://user:password@mq/'],
  },
};

test('every contract entity has cases here', () => {
  assert.deepEqual(Object.keys(CASES).sort(), DLP_ENTITIES.filter((e) => e !== 'CANARY').sort());
});

for (const [entity, { pos, neg }] of Object.entries(CASES)) {
  test(`${entity}: positives are found`, () => {
    for (const p of pos) assert.deepEqual(findingsOf(p), { [entity]: 1 }, `positive ${JSON.stringify(p.slice(0, 60))}`);
  });
  test(`${entity}: look-alikes are not`, () => {
    for (const n of neg) assert.deepEqual(findingsOf(n), {}, `look-alike ${JSON.stringify(n.slice(0, 60))}`);
  });
}

test('CANARY: operator patterns, bare or /…/flags, found only where they match', () => {
  const canaries = ['MESHPEP-CANARY-[0-9a-f]{16}', '/canary-token-\\d+/i'];
  assert.deepEqual(findingsOf('leak MESHPEP-CANARY-0123456789abcdef here', { canaries }), { CANARY: 1 });
  assert.deepEqual(findingsOf('leak CANARY-TOKEN-42 and canary-token-7', { canaries }), { CANARY: 2 });
  assert.deepEqual(findingsOf('MESHPEP-CANARY-0123456789abcdeg', { canaries }), {});
  assert.deepEqual(findingsOf('MESHPEP-CANARY-0123456789abcdef'), {}, 'no canaries configured');
});

test('placeholders and redaction markers are never findings', () => {
  const s = [
    '${SECRET}', '{{ api_key }}', 'XXXX-XXXX-XXXX-XXXX', '***-**-****', '[REDACTED:EMAIL]', '<redacted>',
    `ghp_${'X'.repeat(36)}`, 'AKIAXXXXXXXXXXXXXXXX', 'postgres://u:${PW}@h/d', 'sk_live_your_key_here_0000',
    'Authorization: Bearer <token>', 'card [REDACTED:CREDIT_CARD] for [REDACTED:EMAIL]',
  ].join('\n');
  assert.deepEqual(findingsOf(s), {});
});

test('AWS_SECRET_KEY: a bare 40-character secret next to an access key id', () => {
  assert.deepEqual(findingsOf(`id AKIA${'Z3MSJV7WQ4TLVQ5E'} and ${A.slice(2, 42)}`), { AWS_ACCESS_KEY: 1, AWS_SECRET_KEY: 1 });
  assert.deepEqual(findingsOf(`export AWS_ID=AKIA${'Z3MSJV7WQ4TLVQ5E'}`), { AWS_ACCESS_KEY: 1 });
});

test('entities filter: only the listed entities are reported', () => {
  const t = 'alice@corp-mail.com 4111 1111 1111 1111 from 10.1.2.3';
  assert.deepEqual(findingsOf(t), { EMAIL: 1, CREDIT_CARD: 1, IP_ADDRESS: 1 });
  assert.deepEqual(findingsOf(t, { entities: ['CREDIT_CARD'] }), { CREDIT_CARD: 1 });
});
