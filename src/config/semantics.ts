import { parseFieldPath } from '../protect/json-path.js';
import { dlpSettingsProblems } from '../dlp/index.js';
import type { RawPolicy } from './raw.js';
import type { SchemaWalker } from './schema-walker.js';
import { isLoopbackUrl } from '../identity/loopback.js';

/**
 * Rules a schema cannot express: uniqueness, sections that only fit some tiers, regexes that must
 * compile, and combinations that are legal but almost certainly a mistake (warnings).
 */
export function checkSemantics(raw: RawPolicy, w: SchemaWalker): void {
  const m = raw.security_mesh;
  const base = 'security_mesh';

  if (m.identity?.jwks_file && m.identity?.jwks_uri) {
    w.error(w.at(`${base}.identity.jwks_uri#key`), 'security_mesh.identity: set jwks_file or jwks_uri, not both');
  }
  if (typeof m.identity?.jwks_uri === 'string' && /^http:/i.test(m.identity.jwks_uri) && !isLoopbackUrl(m.identity.jwks_uri)) {
    w.error(w.at(`${base}.identity.jwks_uri`), 'security_mesh.identity.jwks_uri: plain http lets anyone on the path swap the issuer keys; use https (http is accepted only for loopback hosts)');
  }
  if (Array.isArray(m.identity?.audiences) && m.identity.audiences.length === 0) {
    w.error(w.at(`${base}.identity.audiences`), 'security_mesh.identity.audiences: must name at least one audience (an empty list would switch the audience check off)');
  }
  if (m.server?.tls?.allowed_clients && !m.server.tls.client_ca_file) {
    w.error(w.at(`${base}.server.tls.allowed_clients#key`), 'security_mesh.server.tls.allowed_clients: needs client_ca_file (only verified client certificates carry identities)');
  }
  if (!m.identity) {
    w.warn(w.at(`${base}#key`), 'security_mesh.identity: section absent, using development defaults (issuer "mesh-pep", audience "agent-mesh", jwks_file keys/issuer.jwks.json)');
  }
  const trusted = m.attestation?.trusted_measurements ?? [];
  checkZones(raw, w);

  const seen = new Map<string, number>();
  (Array.isArray(m.domains) ? m.domains : []).forEach((d, i) => {
    if (!d || typeof d.name !== 'string') return;
    const p = `${base}.domains[${i}]`;
    const prev = seen.get(d.name);
    if (prev !== undefined) {
      w.error(w.at(`${p}.name`), `${p}.name: duplicate domain "${d.name}" (first defined at security_mesh.domains[${prev}])`);
    } else seen.set(d.name, i);

    if (d.computation && d.tier !== 'COMPUTATION') {
      w.error(w.at(`${p}.computation#key`), `${p}.computation: only COMPUTATION domains take a computation section (tier is ${d.tier})`);
    }
    const budget = m.server?.max_inflight_body_bytes;
    if (budget !== undefined && typeof d.max_body_bytes === 'number' && d.max_body_bytes > budget) {
      w.error(
        w.at(`${p}.max_body_bytes`),
        `${p}.max_body_bytes: ${d.max_body_bytes} is more than server.max_inflight_body_bytes (${budget}); such a body could never be processed`,
      );
    }
    if (d.fhe && d.tier !== 'FHE') {
      w.error(w.at(`${p}.fhe#key`), `${p}.fhe: only FHE domains take an fhe section (tier is ${d.tier})`);
    }
    const c = d.computation;
    if (c) {
      const mode = c.mode ?? 'tee';
      if (mode === 'mpc' && (c.parties?.length ?? 0) < 2) {
        w.error(w.at(`${p}.computation#key`), `${p}.computation: mode mpc needs at least two parties`);
      }
      if (mode === 'tee' && c.parties?.length) {
        w.error(w.at(`${p}.computation.parties#key`), `${p}.computation.parties: parties apply to mode mpc only`);
      }
      const names = new Set<string>();
      c.parties?.forEach((party, j) => {
        if (names.has(party.name)) w.error(w.at(`${p}.computation.parties[${j}].name`), `${p}.computation.parties[${j}].name: duplicate party "${party.name}"`);
        names.add(party.name);
      });
    }
    const checkPaths = (list: string[] | undefined, at: string) =>
      list?.forEach((fieldPath, j) => {
        try {
          parseFieldPath(fieldPath);
        } catch (e) {
          w.error(w.at(`${p}.${at}[${j}]`), `${p}.${at}[${j}]: ${(e as Error).message}`);
        }
      });
    checkPaths(d.computation?.fields, 'computation.fields');
    checkPaths(d.fhe?.paths, 'fhe.paths');
    // The leak guard's own rules, item by item so each problem points at its line; messages never quote
    // a canary (a canary can be a secret itself).
    if (d.dlp) {
      const { action } = d.dlp;
      d.dlp.entities?.forEach((entity, j) => {
        for (const problem of dlpSettingsProblems({ action, entities: [entity], canaries: [] })) {
          w.error(w.at(`${p}.dlp.entities[${j}]`), `${p}.${problem.replace('dlp.entities', `dlp.entities[${j}]`)}`);
        }
      });
      d.dlp.canaries?.forEach((canary, j) => {
        for (const problem of dlpSettingsProblems({ action, entities: [], canaries: [canary] })) {
          w.error(w.at(`${p}.dlp.canaries[${j}]`), `${p}.${problem.replace('dlp.canaries[0]', `dlp.canaries[${j}]`)}`);
        }
      });
    }
    for (const field of ['mask_headers', 'mask_response_headers'] as const) {
      d[field]?.forEach((h, j) => {
        if (h === 'host') w.error(w.at(`${p}.${field}[${j}]`), `${p}.${field}[${j}]: "host" cannot be removed (Envoy refuses it)`);
      });
    }
    if (d.attestation_required && trusted.length === 0) {
      w.warn(w.at(`${p}.attestation_required`), `${p}: attestation_required with no security_mesh.attestation.trusted_measurements denies every request`);
    }
    const level = d.audit_level ?? m.global?.audit_scope ?? 'FULL_MESH';
    if (level === 'OUTPUT_ONLY' && (d.metadata_masking || d.attestation_required)) {
      w.warn(
        w.at(`${p}.audit_level`),
        `${p}: audits OUTPUT_ONLY although it ${d.metadata_masking ? 'masks metadata' : 'requires attestation'}; internal hops of a sensitive domain go unrecorded`,
      );
    }
  });
}

/**
 * Trust zones: names unique, every rule names a defined zone (error at the name), and a segmented
 * domain that no zone pair can reach is almost certainly a mistake (warning, it denies every call).
 */
function checkZones(raw: RawPolicy, w: SchemaWalker): void {
  const m = raw.security_mesh;
  const base = 'security_mesh';
  const zones = Array.isArray(m.zones) ? m.zones : [];
  const defined = new Map<string, number>();
  zones.forEach((z, i) => {
    if (!z || typeof z.name !== 'string') return;
    const prev = defined.get(z.name);
    if (prev !== undefined) w.error(w.at(`${base}.zones[${i}].name`), `${base}.zones[${i}].name: duplicate zone "${z.name}" (first defined at ${base}.zones[${prev}])`);
    else defined.set(z.name, i);
    (Array.isArray(z.principals) ? z.principals : []).forEach((pat, j) => {
      // Envoy reports Istio peers as spiffe:// URIs; anything else never matches under Istio mTLS.
      if (typeof pat === 'string' && !pat.startsWith('spiffe://')) {
        w.warn(w.at(`${base}.zones[${i}].principals[${j}]`), `${base}.zones[${i}].principals[${j}]: "${pat}" is not a spiffe:// principal; Istio peers are reported as spiffe://<trust-domain>/ns/<ns>/sa/<sa>`);
      }
    });
  });
  (Array.isArray(m.domains) ? m.domains : []).forEach((d, i) => {
    if (!d || typeof d.name !== 'string') return;
    const p = `${base}.domains[${i}]`;
    if (!d.zones) {
      if (defined.size > 0) w.warn(w.at(`${p}.name`), `${p}: domain "${d.name}" has no zones section, so callers from every zone (and none) reach it`);
      return;
    }
    const rules = d.zones.allow ?? [];
    let reachable = d.zones.allow_unzoned === true;
    rules.forEach((r, j) => {
      let ok = true;
      for (const end of ['from', 'to'] as const) {
        const name = r[end];
        if (name !== undefined && !defined.has(name)) {
          ok = false;
          const known = defined.size ? [...defined.keys()].join(', ') : 'none defined in security_mesh.zones';
          w.error(w.at(`${p}.zones.allow[${j}].${end}`), `${p}.zones.allow[${j}].${end}: unknown zone "${name}" (known: ${known})`);
        }
      }
      if (ok) reachable = true;
    });
    if (!reachable) {
      w.warn(w.at(`${p}.zones#key`), `${p}: domain "${d.name}" is unreachable: no zone pair may call it and allow_unzoned is off, so every call is denied zone_denied`);
    }
  });
}
