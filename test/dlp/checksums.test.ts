import { test } from 'node:test';
import assert from 'node:assert/strict';
import { abaValid, cardIssuerPlausible, ibanValid, luhnValid, ssnValid } from '../../src/dlp/checksums.js';

test('Luhn accepts published test card numbers and rejects a changed digit', () => {
  for (const n of ['4111111111111111', '5555555555554444', '378282246310005', '6011111111111117', '4012888888881881']) {
    assert.equal(luhnValid(n), true, n);
    assert.equal(cardIssuerPlausible(n), true, n);
  }
  assert.equal(luhnValid('4111111111111112'), false);
  assert.equal(cardIssuerPlausible('9111111111111111'), false);
});

test('IBAN mod-97 with per-country lengths', () => {
  assert.equal(ibanValid('DE89370400440532013000'), true);
  assert.equal(ibanValid('GB82WEST12345698765432'), true);
  assert.equal(ibanValid('NL91ABNA0417164300'), true);
  assert.equal(ibanValid('FR1420041010050500013M02606'), true);
  assert.equal(ibanValid('DE89370400440532013001'), false, 'check digits');
  assert.equal(ibanValid('DE8937040044053201300'), false, 'length');
  assert.equal(ibanValid('QQ89370400440532013000'), false, 'unknown country');
});

test('ABA routing numbers: 3-7-1 checksum and Federal Reserve prefix', () => {
  assert.equal(abaValid('021000021'), true);
  assert.equal(abaValid('011000015'), true);
  assert.equal(abaValid('021000022'), false);
  assert.equal(abaValid('990000003'), false, 'prefix 99 is not assigned');
});

test('SSN issuance rules', () => {
  assert.equal(ssnValid('536221234'), true);
  for (const bad of ['000121234', '666121234', '900121234', '536001234', '536220000', '078051120', '219099999', '123456789', '111111111']) {
    assert.equal(ssnValid(bad), false, bad);
  }
});
