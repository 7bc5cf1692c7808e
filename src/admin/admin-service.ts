import type * as grpc from '@grpc/grpc-js';
import { decide } from '../policy/decide.js';
import { checkRequestToAttributes } from '../envoy/check/request.js';
import { decisionToCheckResponse } from '../envoy/check/response.js';
import { tierModule } from '../protect/registry.js';
import { withCheckLimits } from '../server/overload.js';
import type { Runtime } from '../server/runtime.js';

/**
 * `meshpep.admin.v1.Admin`: `Explain` runs the same pipeline as Check with step recording on and no
 * side effects (no audit record, no metrics); `Status` reports what is serving.
 */
export function createAdminService(rt: Runtime): grpc.UntypedServiceImplementation {
  const explain: grpc.handleUnaryCall<{ check?: unknown }, unknown> = (call, callback) => {
    const policy = rt.policy();
    const attrs = checkRequestToAttributes(call.request?.check);
    // The same admission as Check (deadline, header bytes, the shared in-flight bound): Explain verifies
    // credentials like Check does, so it must not be a way around those limits. Not counted: no metrics.
    withCheckLimits(
      rt,
      attrs,
      call.getDeadline(),
      () => decide(attrs, { policy, currentPolicy: () => rt.policy(), credentials: rt.credentials(), pseudonyms: rt.pseudonyms, guards: rt.guards(), explain: true }),
      { count: false },
    ).then(
      (d) =>
        callback(null, {
          decision: d.kind,
          reason: d.reason,
          domain: d.domain ?? '',
          tier: d.tier ?? '',
          role: d.role ?? '',
          agent: d.agent ?? '',
          steps: d.steps,
          response: decisionToCheckResponse(d),
        }),
      (e: unknown) => callback({ code: 13, details: `explain failed: ${(e as Error).message}` } as grpc.ServiceError),
    );
  };

  const status: grpc.handleUnaryCall<unknown, unknown> = (_call, callback) => {
    const policy = rt.policy();
    Promise.all(
      policy.domains.map(async (d) => {
        let keyIds: string[] = [];
        try {
          keyIds = await (await tierModule(d.tier)).keyIds(policy, d);
        } catch {
          keyIds = [];
        }
        return { name: d.name, tier: d.tier, key_ids: keyIds };
      }),
    ).then(
      (domains) =>
        callback(null, {
          policy_file: policy.source,
          policy_hash: policy.hash,
          loaded_at: new Date(policy.loadedAt).toISOString(),
          domains,
          issuer_key_ids: rt.credentials().keyIds(),
          last_reload: {
            ok: rt.store.lastReload.ok,
            at: new Date(rt.store.lastReload.at).toISOString(),
            errors: rt.store.lastReload.errors,
          },
          ready: rt.ready,
          pid: process.pid,
        }),
      (e: unknown) => callback({ code: 13, details: (e as Error).message } as grpc.ServiceError),
    );
  };

  return { Explain: explain, Status: status };
}
