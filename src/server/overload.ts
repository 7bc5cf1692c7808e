import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { DEFAULTS } from '../config/defaults.js';
import { encodeResponse } from '../envoy/ext-proc/wire.js';
import { unclassifiedDeny, type DenyDecision } from '../policy/decision.js';
import type { ReasonCode } from '../policy/reasons.js';
import type { RequestAttributes } from '../policy/request.js';
import { authorize } from './authorize.js';
import type { Runtime } from './runtime.js';

/**
 * Overload protection. A PEP that queues without bound turns a traffic spike into timeouts, and a
 * timed-out ext_authz call is whatever Envoy's failure mode says; a clear, immediate deny with reason
 * `overloaded` is better for everyone. Limits come from the policy's `server` section.
 */
interface Load {
  checks: number;
  streams: number;
}
const loads = new WeakMap<Runtime, Load>();
const REFUSED_STREAM_IDLE_MS = 5000;

function loadOf(rt: Runtime): Load {
  let l = loads.get(rt);
  if (!l) loads.set(rt, (l = { checks: 0, streams: 0 }));
  return l;
}

export function currentLoad(rt: Runtime): Readonly<Load> {
  return { ...loadOf(rt) };
}

function limits(rt: Runtime) {
  const s = rt.policy().server;
  return {
    maxChecks: s?.maxConcurrentChecks ?? DEFAULTS.maxConcurrentChecks,
    maxStreams: s?.maxConcurrentStreams ?? DEFAULTS.maxConcurrentStreams,
    maxHeaderBytes: s?.maxRequestHeaderBytes ?? DEFAULTS.maxRequestHeaderBytes,
  };
}

/** Header names and values plus path, as Envoy would count them against its own header limit. */
export function requestHeaderBytes(req: RequestAttributes): number {
  let n = req.path.length + req.host.length + req.method.length;
  for (const [k, v] of req.headers) n += k.length + v.length;
  return n;
}

function shed(rt: Runtime, req: RequestAttributes, reason: ReasonCode, count = true): DenyDecision {
  if (count) rt.metrics.decisions.inc({ domain: '', decision: 'deny', reason });
  return unclassifiedDeny(reason, randomUUID(), [{ phase: 'classify', outcome: 'fail', detail: `refused before evaluation: ${reason}` }]);
}

function deadlinePassed(deadline: grpc.Deadline | undefined): boolean {
  if (deadline === undefined) return false;
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) && ms <= Date.now();
}

/**
 * `authorize` behind the admission checks, in order: a call whose deadline already passed is not
 * evaluated (nobody waits for the answer); oversized request headers deny `payload_too_large`; beyond
 * `max_concurrent_checks` in flight the call is denied `overloaded` at once. Shed calls are counted in
 * `mesh_pep_decisions_total` but not audited: writing records is exactly the work an overloaded PEP
 * cannot afford, and no shed call is ever an allow.
 */
export async function authorizeWithLimits(rt: Runtime, req: RequestAttributes, deadline?: grpc.Deadline) {
  // No closure per call here: this is the cached Check path (withCheckLimits is for Explain).
  const refused = admit(rt, req, deadline, true);
  if (refused) return refused;
  const load = loadOf(rt);
  try {
    return await authorize(rt, req);
  } finally {
    load.checks--;
  }
}

/**
 * The admission checks of `authorizeWithLimits` around any other evaluation of a CheckRequest: the
 * admin API's `Explain` runs the same pipeline (credential verification included) and so must not be
 * a way around the header limit or the concurrency bound. Both share one in-flight count. A refused
 * call gets the shed deny instead of `run`'s result.
 */
export async function withCheckLimits<T>(
  rt: Runtime,
  req: RequestAttributes,
  deadline: grpc.Deadline | undefined,
  run: () => Promise<T>,
  opts: { count?: boolean } = {},
): Promise<T | DenyDecision> {
  const refused = admit(rt, req, deadline, opts.count ?? true);
  if (refused) return refused;
  const load = loadOf(rt);
  try {
    return await run();
  } finally {
    load.checks--;
  }
}

/** A shed deny, or undefined once the call holds one of the `max_concurrent_checks` slots. */
function admit(rt: Runtime, req: RequestAttributes, deadline: grpc.Deadline | undefined, count: boolean): DenyDecision | undefined {
  if (deadlinePassed(deadline)) return shed(rt, req, 'overloaded', count);
  const lim = limits(rt);
  if (requestHeaderBytes(req) > lim.maxHeaderBytes) return shed(rt, req, 'payload_too_large', count);
  const load = loadOf(rt);
  if (load.checks >= lim.maxChecks) return shed(rt, req, 'overloaded', count);
  load.checks++;
  return undefined;
}

/**
 * Bounds concurrent ext_proc streams. A stream beyond the limit is answered, on its first message, with
 * an `immediate_response` (503, `x-mesh-reason: overloaded`) and ended: no body of a protected domain
 * passes unprocessed, and Envoy gets a definite answer instead of a hang.
 */
export function limitStreams(rt: Runtime, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const process = impl.Process as grpc.handleBidiStreamingCall<unknown, object> | undefined;
  if (!process) return impl;
  const limited: grpc.handleBidiStreamingCall<unknown, object> = (call) => {
    const load = loadOf(rt);
    if (load.streams >= limits(rt).maxStreams) {
      rt.metrics.decisions.inc({ domain: '', decision: 'deny', reason: 'overloaded' });
      let answered = false;
      // A refused stream that never sends a message must not hold a connection slot for ever.
      const idle = setTimeout(() => finish(), REFUSED_STREAM_IDLE_MS);
      idle.unref();
      const finish = () => {
        clearTimeout(idle);
        if (answered) return;
        answered = true;
        call.end();
      };
      call.on('data', () => {
        if (answered) return;
        call.write(encodeResponse({ type: 'immediate', reason: 'overloaded' }));
        finish();
      });
      call.on('error', () => undefined);
      call.on('end', finish);
      return;
    }
    load.streams++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        load.streams--;
      }
    };
    call.once('close', release);
    call.once('finish', release);
    call.once('cancelled', release);
    call.once('error', release);
    process(call);
  };
  return { ...impl, Process: limited };
}
