import type { DomainZoneAccess, ZoneDefinition } from '../../config/types.js';
import type { DecisionGuard } from '../decide.js';
import type { ReasonCode } from '../reasons.js';

/** The first zone (in policy order) whose patterns match; one workload sits in exactly one zone. */
export function zoneOf(zones: readonly ZoneDefinition[], principal: string | undefined): string | undefined {
  if (principal === undefined || principal === '') return undefined;
  for (const z of zones) if (z.matches(principal)) return z.name;
  return undefined;
}

/** Pure rule check, shared by the guard and by `validate`-style tooling. */
export function zoneVerdict(access: DomainZoneAccess, source: string | undefined, destination: string | undefined): ReasonCode | undefined {
  const from = zoneOf(access.zones, source);
  if (from === undefined) return access.allowUnzoned ? undefined : 'zone_denied';
  const to = zoneOf(access.zones, destination);
  return access.rules.some((r) => r.from === from && (r.to === undefined || r.to === to)) ? undefined : 'zone_denied';
}

/**
 * Micro-segmentation: in a domain with a `zones` section, the caller's zone (from its SPIFFE principal)
 * must be allowed to call the callee's zone (from the destination principal). Domains without the
 * section are not segmented. Reads only the domain object, i.e. the same compiled policy as the rest of
 * the decision.
 */
export class ZoneGuard implements DecisionGuard {
  readonly phase = 'zone' as const;
  check(input: Parameters<DecisionGuard['check']>[0]): ReasonCode | undefined {
    const access = input.domain.zoneAccess;
    if (!access) return undefined;
    return zoneVerdict(access, input.request.sourcePrincipal, input.request.destinationPrincipal);
  }
}
