import { stat } from 'node:fs/promises';
import type { RevocationLists, RevocationSettings } from '../../config/types.js';
import { ConfigError, formatProblem } from '../../errors.js';
import type { VerifiedCredential } from '../../identity/verifier.js';
import type { DecisionGuard } from '../decide.js';
import type { ReasonCode } from '../reasons.js';
import { EMPTY_REVOCATION, readRevocationFile } from './revocation-file.js';

export interface RevocationOptions {
  /** Drops cached verified credentials matching the predicate (CredentialVerifier.invalidate). */
  invalidate: (pred: (c: VerifiedCredential) => boolean) => void;
  onError?: (message: string) => void;
  onChange?: (counts: { agents: number; tokenIds: number; keyIds: number }) => void;
  /** How often the separate revocation file is checked for changes; default 1000 ms. */
  pollMs?: number;
}

function isRevokedBy(l: RevocationLists, c: VerifiedCredential): boolean {
  // c.kid / c.keyThumbprint name the key that verified the token, whatever its header said (or left out).
  return (
    l.agents.has(c.agentId) ||
    (c.jti !== undefined && l.tokenIds.has(c.jti)) ||
    (c.kid !== undefined && l.keyIds.has(c.kid)) ||
    (c.keyThumbprint !== undefined && l.keyIds.has(c.keyThumbprint))
  );
}

/**
 * The union of the policy's inline revocation lists and the separate revocation file. Every change
 * also drops matching credentials from the verifier's cache, so a revoked credential is never answered
 * from a cache again; the guard itself checks every request anyway (the cache holds verified claims,
 * not decisions).
 */
export class RevocationRegistry {
  private inline: RevocationLists = EMPTY_REVOCATION;
  private fromFile: RevocationLists = EMPTY_REVOCATION;
  private file: string | undefined;
  private fileStamp = '';
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly opts: RevocationOptions) {}

  isRevoked(c: VerifiedCredential): boolean {
    return isRevokedBy(this.inline, c) || isRevokedBy(this.fromFile, c);
  }

  /** Applies the policy's settings; the first call with a file throws if the file cannot be read. */
  async apply(settings: RevocationSettings | undefined, strict = false): Promise<void> {
    this.inline = settings ?? EMPTY_REVOCATION;
    if (settings?.file !== this.file) {
      this.file = settings?.file;
      this.fileStamp = '';
      if (!this.file) this.fromFile = EMPTY_REVOCATION;
    }
    if (this.file) await this.refresh(strict);
    this.changed();
    this.schedule();
  }

  /** Re-reads the revocation file if it changed. A bad file keeps the last good list (and says why). */
  refresh(strict = false): Promise<void> {
    this.refreshing ??= this.doRefresh(strict).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(strict: boolean): Promise<void> {
    const file = this.file;
    if (!file) return;
    let stamp: string;
    try {
      const s = await stat(file);
      stamp = `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch (e) {
      stamp = 'missing';
      if (strict) throw new ConfigError([{ file, line: 1, col: 1, message: 'revocation file not found', severity: 'error' }]);
      if (this.fileStamp !== stamp) this.opts.onError?.(`${file}: revocation file unreadable (${(e as NodeJS.ErrnoException).code ?? 'error'}); keeping the last good list`);
      this.fileStamp = stamp;
      return;
    }
    if (stamp === this.fileStamp) return;
    try {
      this.fromFile = await readRevocationFile(file);
      this.fileStamp = stamp;
      this.changed();
    } catch (e) {
      if (strict) throw e;
      this.fileStamp = stamp;
      const why = e instanceof ConfigError ? e.problems.map(formatProblem).join('; ') : (e as Error).message;
      this.opts.onError?.(`revocation file rejected, keeping the last good list: ${why}`);
    }
  }

  private changed(): void {
    this.opts.invalidate((c) => this.isRevoked(c));
    const n = (k: keyof RevocationLists) => this.inline[k].size + this.fromFile[k].size;
    this.opts.onChange?.({ agents: n('agents'), tokenIds: n('tokenIds'), keyIds: n('keyIds') });
  }

  private schedule(): void {
    if (!this.file || this.timer) return;
    this.timer = setInterval(() => void this.refresh(), this.opts.pollMs ?? 1000);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** Denies `revoked` when the agent id, the token id (`jti`) or the signing key id (`kid`) is revoked. */
export class RevocationGuard implements DecisionGuard {
  readonly phase = 'identify' as const;
  constructor(private readonly registry: RevocationRegistry) {}
  check(input: Parameters<DecisionGuard['check']>[0]): ReasonCode | undefined {
    return this.registry.isRevoked(input.credential) ? 'revoked' : undefined;
  }
}
