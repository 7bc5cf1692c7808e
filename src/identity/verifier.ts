import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyResult } from 'jose';
import type { IdentitySettings } from '../config/types.js';
import { CredentialError } from '../errors.js';
import { CredentialCache } from './credential-cache.js';
import { FileJwksSource } from './jwks-file.js';
import { RemoteJwksSource, type RemoteJwksOptions } from './jwks-remote.js';
import { JwksUnavailableError, keyRefId, MissingKidError, type JwksSource, type KeyUse } from './jwks-source.js';

export interface VerifiedCredential {
  agentId: string;
  role: string | undefined;
  spiffeId: string | undefined;
  attestation: string | undefined;
  issuedAtMs: number;
  expiresAtMs: number;
  jti: string | undefined;
  /**
   * The issuer key that verified the signature (not what the token's header claims): its kid, if the
   * JWK has one, and its RFC 7638 thumbprint. Revocation by key and cache invalidation use these.
   */
  kid: string | undefined;
  keyThumbprint: string | undefined;
}

export interface VerifierOptions {
  /** Most cached verified credentials; default 10_000. 0 disables the cache. */
  cacheSize?: number;
  /** Largest max token age over all domains; cache entries never outlive iat + this. */
  maxAgeMs: () => number;
  now?: () => number;
  onCacheLookup?: (hit: boolean) => void;
  onJwksError?: (err: Error) => void;
  /** Timing of a `jwks_uri` source (timeout, max age, cooldown); defaults suit production. */
  remoteJwks?: Omit<RemoteJwksOptions, 'now' | 'onError'>;
  /** Least time between two checks of a `jwks_file` for changes; default 1000 ms. */
  jwksFileCheckIntervalMs?: number;
}

/**
 * Only asymmetric algorithms: with HMAC the verification key is the signing key, and an issuer's
 * public JWKS must never be usable to mint credentials; `none` is no signature at all.
 */
export const ASYMMETRIC_JWS_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
]);

/** Longer bearer values are rejected before any parsing or hashing work. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/**
 * Verifies agent credentials (JWTs) against the issuer's keys and the identity settings. Domain-level
 * checks (max token age, role, SPIFFE binding, attestation) are the decision core's: this class answers
 * only "is this a valid credential from our issuer, and what does it say".
 */
export class CredentialVerifier {
  readonly #settings: IdentitySettings;
  readonly #now: () => number;
  readonly #onCacheLookup: ((hit: boolean) => void) | undefined;
  readonly #cache: CredentialCache;
  readonly #source: JwksSource | undefined;
  readonly #algorithms: string[];
  readonly #inflight = new Map<string, Promise<VerifiedCredential>>();
  /** Bumped whenever cached entries are dropped, so a verification that raced the drop is not cached. */
  #generation = 0;

  constructor(settings: IdentitySettings, opts: VerifierOptions) {
    this.#settings = settings;
    this.#now = opts.now ?? Date.now;
    this.#onCacheLookup = opts.onCacheLookup;
    this.#cache = new CredentialCache({
      maxEntries: opts.cacheSize ?? 10_000,
      maxAgeMs: opts.maxAgeMs,
      now: this.#now,
    });
    // An empty list means "not restricted further"; the asymmetric set is always the upper bound.
    this.#algorithms =
      settings.algorithms.length === 0
        ? [...ASYMMETRIC_JWS_ALGORITHMS]
        : ASYMMETRIC_JWS_ALGORITHMS.filter((a) => settings.algorithms.includes(a));
    const onError = opts.onJwksError ?? (() => {});
    if (settings.jwksUri !== undefined) {
      this.#source = new RemoteJwksSource(settings.jwksUri, { ...opts.remoteJwks, now: this.#now, onError });
    } else if (settings.jwksFile !== undefined) {
      const file = new FileJwksSource(settings.jwksFile, {
        checkIntervalMs: opts.jwksFileCheckIntervalMs,
        now: this.#now,
        onError,
      });
      void file.refresh();
      this.#source = file;
    }
    this.#source?.onKeysRemoved((removed) => {
      this.invalidate((c) => c.keyThumbprint === undefined || removed.has(keyRefId({ kid: c.kid, thumbprint: c.keyThumbprint })));
    });
  }

  async verify(token: string): Promise<VerifiedCredential> {
    if (typeof token !== 'string' || token.length === 0) throw invalid('empty credential');
    if (token.length > MAX_TOKEN_LENGTH) {
      throw invalid(`credential longer than ${MAX_TOKEN_LENGTH} characters`);
    }
    const due = this.#source?.checkForChanges?.();
    if (due) await due;
    const key = CredentialCache.keyOf(token);
    const cached = this.#cache.get(key);
    this.#onCacheLookup?.(cached !== undefined);
    if (cached) return cached;
    // Concurrent calls with the same new token share one verification.
    const pending = this.#inflight.get(key);
    if (pending) return pending;
    const generation = this.#generation;
    const p = this.#verifyUncached(token)
      .then((cred) => {
        if (generation === this.#generation) this.#cache.set(key, cred);
        return cred;
      })
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  keyIds(): string[] {
    return this.#source?.keyIds() ?? [];
  }

  invalidate(pred: (c: VerifiedCredential) => boolean): number {
    this.#generation++;
    return this.#cache.invalidate(pred);
  }

  clear(): void {
    this.#generation++;
    this.#cache.clear();
  }

  close(): void {
    this.#source?.close();
  }

  async #verifyUncached(token: string): Promise<VerifiedCredential> {
    if (!this.#source) {
      throw invalid('no issuer key set configured (identity.jwks_file or identity.jwks_uri)');
    }
    if (this.#algorithms.length === 0) {
      throw invalid('no asymmetric algorithm is allowed by identity.algorithms');
    }
    const { issuer, audiences, clockSkewMs } = this.#settings;
    let result: JWTVerifyResult<JWTPayload>;
    const used: KeyUse = {};
    const source = this.#source;
    try {
      result = await jwtVerify(token, (header, jws) => source.getKey(header, jws, used), {
        algorithms: this.#algorithms,
        issuer,
        audience: audiences.length > 0 ? [...audiences] : undefined,
        clockTolerance: Math.max(0, clockSkewMs) / 1000,
        currentDate: new Date(this.#now()),
        requiredClaims: ['sub', 'iat', 'exp'],
      });
    } catch (err) {
      throw mapError(err, token, this.#algorithms);
    }
    const { payload, protectedHeader } = result;
    // The lookup always records the key it returned; without one, the key is unknown: fail closed.
    if (!used.key) throw invalid('issuer key that verified the credential is unknown', token);
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
      throw invalid('credential "sub" claim must be a non-empty string', token);
    }
    const iat = payload.iat;
    const exp = payload.exp;
    if (typeof iat !== 'number' || !Number.isFinite(iat) || typeof exp !== 'number' || !Number.isFinite(exp)) {
      throw invalid('credential "iat" and "exp" claims must be numbers', token);
    }
    // An iat in the future would stretch iat + max token age past what the domain allows.
    if (iat * 1000 > this.#now() + clockSkewMs) {
      throw invalid('credential "iat" claim is in the future', token);
    }
    checkTyp(protectedHeader.typ, token);
    const { roleClaim, spiffeClaim, attestationClaim } = this.#settings;
    const role = payload[roleClaim];
    const spiffe = payload[spiffeClaim];
    // A present SPIFFE claim binds the credential to a workload; one of the wrong type must not quietly
    // turn that binding off.
    if (spiffe !== undefined && typeof spiffe !== 'string') {
      throw invalid(`credential "${spiffeClaim}" claim must be a string`, token);
    }
    const attestation = payload[attestationClaim];
    return Object.freeze({
      agentId: payload.sub,
      role: typeof role === 'string' && role.length > 0 ? role : undefined,
      spiffeId: typeof spiffe === 'string' ? spiffe : undefined,
      attestation: typeof attestation === 'string' ? attestation : undefined,
      issuedAtMs: iat * 1000,
      expiresAtMs: exp * 1000,
      jti: typeof payload.jti === 'string' ? payload.jti : undefined,
      kid: used.key.kid,
      keyThumbprint: used.key.thumbprint,
    });
  }
}

/**
 * `typ` values of an access credential (RFC 7519 `JWT`, RFC 9068 `at+jwt`), compared as media types:
 * case-insensitive, `application/` optional (RFC 7515 §4.1.9). Absent is accepted (many issuers omit
 * it). Anything else (an ID token's or logout token's `+jwt` type, `JOSE`, a JWE) is another kind of
 * token signed by the same issuer and is refused, so it cannot be replayed as an agent credential.
 */
const ACCEPTED_TYP = new Set(['jwt', 'at+jwt']);

function checkTyp(typ: unknown, token: string): void {
  if (typ === undefined) return;
  const t = typeof typ === 'string' ? typ.toLowerCase().replace(/^application\//, '') : undefined;
  if (t === undefined || !ACCEPTED_TYP.has(t)) {
    throw invalid(`credential "typ" ${describeHeader(token, 'typ')} is not accepted (allowed: absent, JWT, at+jwt)`, token);
  }
}

function invalid(message: string, token?: string): CredentialError {
  return new CredentialError('invalid_credential', token === undefined ? message : scrub(message, token));
}

/** Turns any verification failure into a CredentialError whose message is safe for operators' logs. */
function mapError(err: unknown, token: string, algorithms: readonly string[]): CredentialError {
  if (err instanceof errors.JWTExpired) {
    return new CredentialError('expired_credential', 'credential has expired ("exp" is in the past)');
  }
  let message: string;
  if (err instanceof JwksUnavailableError || err instanceof MissingKidError) {
    message = err.message;
  } else if (err instanceof errors.JWTClaimValidationFailed) {
    message = `credential claim check failed: ${err.message}`;
  } else if (err instanceof errors.JOSEAlgNotAllowed) {
    message = `credential algorithm ${describeHeader(token, 'alg')} is not accepted (allowed: ${algorithms.join(', ')})`;
  } else if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
    message = `no issuer key verifies the credential (kid ${describeHeader(token, 'kid')}, alg ${describeHeader(token, 'alg')})`;
  } else if (err instanceof errors.JWSSignatureVerificationFailed) {
    message = 'credential signature verification failed';
  } else if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    message = `malformed credential: ${err.message}`;
  } else if (err instanceof errors.JOSEError) {
    message = `credential rejected: ${err.message}`;
  } else {
    message = `credential verification failed: ${err instanceof Error ? err.message : 'unknown error'}`;
  }
  return invalid(message, token);
}

/** Characters of kids and algs seen in the wild (thumbprints, UUIDs, names); nothing a log parser or a
 * terminal could trip over. */
export const SAFE_HEADER_VALUE = /^[A-Za-z0-9._:=-]{1,128}$/;

/** A header value fit for a log line: attacker-chosen, so only short, plain values are echoed. */
function describeHeader(token: string, name: 'alg' | 'kid' | 'typ'): string {
  let value: unknown;
  try {
    value = decodeProtectedHeader(token)[name];
  } catch {
    return '(unreadable header)';
  }
  if (value === undefined) return '(none)';
  if (typeof value === 'string' && SAFE_HEADER_VALUE.test(value)) return JSON.stringify(value);
  return '(unprintable)';
}

/** Belt and braces: whatever a library put in a message, no piece of the token leaves in it. */
function scrub(message: string, token: string): string {
  let out = message;
  for (const part of token.split('.')) {
    if (part.length >= 8) out = out.split(part).join('[redacted]');
  }
  return out;
}
