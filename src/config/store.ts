import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { ConfigError, formatProblem, type ConfigProblem } from '../errors.js';
import { loadPolicyFile } from './load.js';
import type { CompiledPolicy } from './types.js';

export interface ReloadResult {
  ok: boolean;
  at: number;
  errors: string[];
}

/**
 * Holds the serving policy. A reload compiles a new policy off to the side and swaps one reference,
 * so a request reads either the old policy or the new one, never a mix. A reload that fails keeps the
 * last good policy serving and records why.
 */
export class PolicyStore {
  private currentPolicy: CompiledPolicy;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<ReloadResult> | undefined;
  private readonly listeners: Array<(p: CompiledPolicy, prev: CompiledPolicy) => void | Promise<void>> = [];
  lastReload: ReloadResult;

  private constructor(
    readonly file: string,
    initial: CompiledPolicy,
  ) {
    this.currentPolicy = initial;
    this.lastReload = { ok: true, at: Date.now(), errors: [] };
  }

  static async open(file: string): Promise<{ store: PolicyStore; warnings: ConfigProblem[] }> {
    const { policy, warnings } = await loadPolicyFile(file);
    return { store: new PolicyStore(path.resolve(file), policy), warnings };
  }

  get current(): CompiledPolicy {
    return this.currentPolicy;
  }

  /** Called after each successful swap (e.g. to rebuild the credential verifier or drop caches). */
  onChange(fn: (p: CompiledPolicy, prev: CompiledPolicy) => void | Promise<void>): void {
    this.listeners.push(fn);
  }

  /** Re-reads the file; concurrent calls share one reload. Unchanged content is a no-op success. */
  reload(): Promise<ReloadResult> {
    this.reloading ??= this.doReload().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async doReload(): Promise<ReloadResult> {
    try {
      const { policy } = await loadPolicyFile(this.file);
      if (policy.hash !== this.currentPolicy.hash) {
        const prev = this.currentPolicy;
        this.currentPolicy = policy;
        for (const fn of this.listeners) await fn(policy, prev);
      }
      this.lastReload = { ok: true, at: Date.now(), errors: [] };
    } catch (e) {
      const errors = e instanceof ConfigError ? e.problems.map(formatProblem) : [(e as Error).message];
      this.lastReload = { ok: false, at: Date.now(), errors };
    }
    return this.lastReload;
  }

  /**
   * Watches the file's folder rather than the file: editors and Kubernetes ConfigMaps replace files by
   * rename/symlink swap, which a watch on the old inode would miss. Events are debounced.
   */
  watch(onResult: (r: ReloadResult) => void, debounceMs = 100): void {
    if (this.watcher) return;
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    this.watcher = watch(dir, { persistent: false }, (_event, name) => {
      if (name && name !== base && !String(name).startsWith('..')) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        void this.reload().then(onResult);
      }, debounceMs);
    });
    this.watcher.on('error', () => undefined);
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
