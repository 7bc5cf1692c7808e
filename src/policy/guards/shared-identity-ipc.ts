import type { SharedIdentitySettings } from '../../config/types.js';
import { PrincipalTracker, type SharedIdentityPeer } from './shared-identity.js';

/**
 * The shared-identity view across cluster workers (issue 17, finding 3). Each worker sees only the
 * connections the primary handed it, so an agent id presented from principal A on worker 1 and from
 * principal B on worker 2 was never seen twice by anyone. The primary now holds the one tracker:
 * workers report each (agent, principal) pair they have not reported yet (`seen`), the primary answers
 * with the agent's principals within the window (`seen-answer`), and when a pair is new for an agent
 * that already has another principal, the primary pushes the list to every worker (`shared`).
 *
 * The messages carry agent ids and SPIFFE principals (identifiers, not credentials) over the local
 * IPC channel only; neither end logs them.
 */
export interface SeenMessage {
  mesh: 'identity-seen';
  id: number;
  agent: string;
  principal: string;
  at: number;
  windowMs: number;
  maxAgents: number;
}

export interface SeenAnswerMessage {
  mesh: 'identity-seen-answer';
  id: number;
  principals: Array<[string, number]>;
  isNew: boolean;
}

export interface SharedMessage {
  mesh: 'identity-shared';
  agent: string;
  principals: Array<[string, number]>;
}

/** The worker's side of its IPC channel; `process` in a cluster worker is one. */
export interface IdentityChannel {
  readonly connected: boolean;
  send(message: SeenMessage, callback?: (err: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/** The primary's view of one worker's channel; a node:cluster `Worker` is one. */
export interface IdentityWorkerChannel {
  send(message: SeenAnswerMessage | SharedMessage, callback: (err: Error | null) => void): boolean;
}

/** How long a worker waits for the primary before deciding on its own view. */
const ASK_TIMEOUT_MS = 1000;

export class IpcSharedIdentityPeer implements SharedIdentityPeer {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (a: SeenAnswerMessage) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private sharedHandler: ((agentId: string, principals: Array<[string, number]>) => void) | undefined;

  constructor(private readonly channel: IdentityChannel) {
    channel.on('message', this.onMessage);
  }

  observe(agentId: string, principal: string, at: number, settings: SharedIdentitySettings): Promise<{ principals: Array<[string, number]>; isNew: boolean }> {
    if (!this.channel.connected) return Promise.reject(new Error('the cluster primary is gone'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error('the cluster primary did not answer'));
      }, ASK_TIMEOUT_MS);
      timer.unref();
      this.waiting.set(id, { resolve, reject, timer });
      const message: SeenMessage = { mesh: 'identity-seen', id, agent: agentId, principal, at, windowMs: settings.windowMs, maxAgents: settings.maxTrackedAgents };
      try {
        this.channel.send(message, (err) => {
          if (err) this.fail(id, err);
        });
      } catch (e) {
        this.fail(id, e as Error);
      }
    });
  }

  onShared(handler: (agentId: string, principals: Array<[string, number]>) => void): void {
    this.sharedHandler = handler;
  }

  close(): void {
    this.channel.off('message', this.onMessage);
    for (const id of [...this.waiting.keys()]) this.fail(id, new Error('closed'));
  }

  private fail(id: number, err: Error): void {
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    w.reject(err);
  }

  private readonly onMessage = (m: unknown): void => {
    const msg = m as Partial<SeenAnswerMessage | SharedMessage> | null;
    if (msg?.mesh === 'identity-seen-answer') {
      const a = msg as SeenAnswerMessage;
      const w = this.waiting.get(a.id);
      if (!w) return;
      this.waiting.delete(a.id);
      clearTimeout(w.timer);
      if (Array.isArray(a.principals)) w.resolve(a);
      else w.reject(new Error('malformed answer from the cluster primary'));
    } else if (msg?.mesh === 'identity-shared') {
      const s = msg as SharedMessage;
      if (typeof s.agent === 'string' && Array.isArray(s.principals)) this.sharedHandler?.(s.agent, s.principals);
    }
  };
}

/** The primary's end: one tracker for the whole cluster. */
export class SharedIdentityIpcRegistry {
  private readonly tracker = new PrincipalTracker();
  private readonly workers = new Set<IdentityWorkerChannel>();

  /** Handles a worker's message; false when it is not a shared-identity message. */
  handle(from: IdentityWorkerChannel, message: unknown): boolean {
    const m = message as Partial<SeenMessage> | null;
    if (m?.mesh !== 'identity-seen') return false;
    this.workers.add(from);
    if (typeof m.id !== 'number' || typeof m.agent !== 'string' || typeof m.principal !== 'string' || typeof m.at !== 'number') return true;
    const settings: SharedIdentitySettings = {
      windowMs: positive(m.windowMs, 300_000),
      maxTrackedAgents: positive(m.maxAgents, 100_000),
    };
    const seen = this.tracker.observe(m.agent, m.principal, m.at, settings);
    const principals = this.tracker.principalsOf(m.agent);
    this.send(from, { mesh: 'identity-seen-answer', id: m.id, principals, isNew: seen.isNew });
    if (seen.isNew && seen.count >= 2) {
      for (const w of this.workers) if (w !== from) this.send(w, { mesh: 'identity-shared', agent: m.agent, principals });
    }
    return true;
  }

  forget(worker: IdentityWorkerChannel): void {
    this.workers.delete(worker);
  }

  get trackedAgents(): number {
    return this.tracker.size;
  }

  private send(to: IdentityWorkerChannel, message: SeenAnswerMessage | SharedMessage): void {
    // With a callback, a send to a worker that just died reports here instead of emitting 'error'.
    const drop = (err: Error | null) => {
      if (err) this.workers.delete(to);
    };
    try {
      to.send(message, drop);
    } catch (e) {
      drop(e as Error);
    }
  }
}

function positive(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : fallback;
}
